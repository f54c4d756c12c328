# Stage 1: raw survey files -> HDF5 light-curve store, on MPI ranks.


rule fetch_plasticc:
    output:
        [f"{DATA}/{name}" for name in ("plasticc_train_lightcurves.csv",
                                       "plasticc_train_metadata.csv",
                                       "sniabcii_test_lightcurves_example.csv",
                                       "sniabcii_test_metadata_example.csv")],
        directory(f"{DATA}/SPCC_SUBSET"),
    params:
        dest=lambda wc, output: Path(output[0]).parent,
    log:
        f"{RESULTS}/logs/fetch_plasticc.log",
    shell:
        "snia data fetch plasticc {params.dest} > {log} 2>&1"


rule ingest:
    input:
        unpack(dataset_inputs),
    output:
        store=f"{RESULTS}/stores/{{name}}.h5",
    params:
        fmt=lambda wc: dataset(wc.name)["format"],
        metadata=lambda wc, input: f"--metadata {' '.join(input.metadata)}" if input.metadata else "",
        split=lambda wc: f"--split {dataset(wc.name)['split']}" if dataset(wc.name).get("split") else "",
        survey=lambda wc: f"--survey {dataset(wc.name)['survey']}" if dataset(wc.name).get("survey") else "",
        on_error=config["ingest"]["on_error"],
        chunk_mb=config["ingest"]["chunk_mb"],
    resources:
        # Only rules with an `mpi` resource escape the SLURM plugin's one-task wrapper; locally
        # use --set-resources 'ingest:mpi="mpiexec"'.
        mpi="srun",
        tasks=config["ingest"]["ranks"],
    log:
        f"{RESULTS}/logs/ingest_{{name}}.log",
    shell:
        "{resources.mpi} -n {resources.tasks} snia ingest --format {params.fmt} {input.lightcurves}"
        " {params.metadata} {params.split} {params.survey} --on-error {params.on_error}"
        " --chunk-mb {params.chunk_mb} --no-progress --overwrite -o {output.store} > {log} 2>&1"


rule store_info:
    input:
        f"{RESULTS}/stores/{{name}}.h5",
    output:
        f"{RESULTS}/stores/{{name}}.info.txt",
    log:
        f"{RESULTS}/logs/store_info_{{name}}.log",
    shell:
        "(snia store verify {input} && snia store info {input}) > {output} 2> {log}"

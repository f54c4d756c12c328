# Stage 1: raw survey files -> HDF5 light-curve store, on MPI ranks.


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
        launch=launch,
    threads: config["ingest"]["ranks"]
    resources:
        # `mpi` makes the SLURM executor run this job's shell as is (no one-task srun wrapper);
        # the local profile (cluster/local) sets mpi="mpiexec".
        mpi=mpi_resource(config["ingest"]["ranks"]),
        tasks=config["ingest"]["ranks"],
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/ingest_{{name}}.log",
    shell:
        "{params.launch} snia ingest --format {params.fmt} {input.lightcurves}"
        " {params.metadata} {params.split} {params.survey} --on-error {params.on_error}"
        " --chunk-mb {params.chunk_mb} --no-progress --overwrite -o {output.store} > {log} 2>&1"


rule store_info:
    input:
        f"{RESULTS}/stores/{{name}}.h5",
    output:
        f"{RESULTS}/stores/{{name}}.info.txt",
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/store_info_{{name}}.log",
    shell:
        "(snia store verify {input} && snia store info {input}) > {output} 2> {log}"

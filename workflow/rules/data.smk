# Stage 0: the benchmark data (PLAsTiCC training set, test example, SPCC subset) from PyPI.


rule fetch_plasticc:
    output:
        [f"{DATA}/{name}" for name in PLASTICC_FILES],
        directory(f"{DATA}/SPCC_SUBSET"),
    params:
        dest=lambda wc, output: Path(output[0]).parent,
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/fetch_plasticc.log",
    shell:
        "snia data fetch plasticc {params.dest} > {log} 2>&1"


rule subset_data:
    input:
        [f"{DATA}/{name}" for name in PLASTICC_FILES],
        f"{DATA}/SPCC_SUBSET",
    output:
        [f"{SUBSET_DIR}/{name}" for name in PLASTICC_FILES],
        directory(f"{SUBSET_DIR}/SPCC_SUBSET"),
    params:
        source=lambda wc, input: Path(input[0]).parent,
        dest=lambda wc, output: Path(output[0]).parent,
        max_objects=config["subset"],
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/subset_data.log",
    shell:
        "snia data subset plasticc {params.source} {params.dest}"
        " --max-objects {params.max_objects} > {log} 2>&1"

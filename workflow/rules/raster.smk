# Stage 2: light-curve store -> images (HDF5), one file per dataset and image kind. Training
# rasterizes on the fly; these files are for inspection and for other tools.


rule rasterize:
    input:
        f"{RESULTS}/stores/{{name}}.h5",
    output:
        f"{RESULTS}/images/{{name}}.{{kind}}.h5",
    wildcard_constraints:
        kind="bands|heatmap",
    params:
        backend=config["raster"]["backend"],
        batch_size=config["raster"]["batch_size"],
    threads: 2
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/rasterize_{{name}}_{{kind}}.log",
    shell:
        "snia rasterize {input} -o {output} --kind {wildcards.kind} --backend {params.backend}"
        " --batch-size {params.batch_size} --no-progress > {log} 2>&1"

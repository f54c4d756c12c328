# Stage 2: light-curve store -> images (HDF5), one file per dataset and image kind, drawn with the
# model's image geometry (`train.settings.raster`). Training rasterizes on the fly; these files
# are for inspection and for other tools.


# The image files `rule all` asks for: every dataset in every kind.
IMAGE_FILES = [f"{RESULTS}/images/{name}.{kind}.h5" for name in config["images"]["datasets"]
               for kind in config["images"]["kinds"]]


localrules:
    image_settings,


rule image_settings:
    output:
        f"{RESULTS}/images/settings.yaml",
    params:
        settings=config["train"]["settings"],
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/image_settings.log",
    script:
        "../scripts/image_settings.py"


rule rasterize:
    input:
        store=f"{RESULTS}/stores/{{name}}.h5",
        settings=f"{RESULTS}/images/settings.yaml",
    output:
        f"{RESULTS}/images/{{name}}.{{kind}}.h5",
    wildcard_constraints:
        kind="|".join(config["images"]["kinds"]),
    params:
        backend=config["images"]["backend"],
        batch_size=config["images"]["batch_size"],
    threads: 2
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/rasterize_{{name}}_{{kind}}.log",
    shell:
        "snia rasterize {input.store} -o {output} --kind {wildcards.kind} --config {input.settings}"
        " --backend {params.backend} --batch-size {params.batch_size} --no-progress > {log} 2>&1"

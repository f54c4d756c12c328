# Stage 2b: Gaussian-process fits of a store's light curves (`snia gp fit`), kept beside it as
# STORE.gp.h5 with the store's checksums. Training re-observes labelled objects from them
# (train.settings.augment.reobserve_probability, with a train.survey), and so does the baseline
# (baseline.survey).


rule gp_fit:
    input:
        f"{RESULTS}/stores/{{name}}.h5",
    output:
        f"{RESULTS}/stores/{{name}}.gp.h5",
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/gp_fit_{{name}}.log",
    threads: 2
    shell:
        "snia gp fit {input} -o {output} --no-progress > {log} 2>&1"

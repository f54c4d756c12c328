# The baseline: a random forest on light-curve features, tuned by a cross-validated
# successive-halving search (snia.baseline.make_search).


rule baseline:
    input:
        train=store(config["baseline"]["train"]),
        test=store(config["baseline"]["test"]),
    output:
        metrics=f"{RESULTS}/baseline/metrics.json",
        predictions=f"{RESULTS}/baseline/predictions.csv",
    params:
        out_dir=lambda wc, output: Path(output.metrics).parent,
        n_iter=config["baseline"]["n_iter"],
        seed=config["baseline"]["seed"],
    threads: 2
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/baseline.log",
    shell:
        "snia baseline --train {input.train} --test {input.test} -o {params.out_dir}"
        " --n-iter {params.n_iter} --seed {params.seed} > {log} 2>&1"

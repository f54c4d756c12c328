# The baseline: a random forest on features of each light curve's GP fit (or, with
# baseline.features: light-curve, the light-curve package's per band), tuned by a cross-validated
# successive-halving search (snia.baseline.make_search); with baseline.survey, fitted on the
# training objects and `copies` re-observations of each through that dataset's schedules (from
# the training store's GP fits).
BASELINE_SURVEY = config["baseline"].get("survey")
BASELINE_COPIES = int(config["baseline"].get("copies", 0)) if BASELINE_SURVEY else 0
# the feature set: left out, snia.baseline.run_baseline's default (its one source)
BASELINE_FEATURES = config["baseline"].get("features")


rule baseline:
    input:
        train=store(config["baseline"]["train"]),
        test=store(config["baseline"]["test"]),
        survey=[store(BASELINE_SURVEY)] if BASELINE_COPIES else [],
        gp_fits=[f"{RESULTS}/stores/{config['baseline']['train']}.gp.h5"] if BASELINE_COPIES else [],
    output:
        metrics=f"{RESULTS}/baseline/metrics.json",
        predictions=f"{RESULTS}/baseline/predictions.csv",
        # the out-of-fold P(Ia) of its re-observed copies (for train.survey_forest: auto)
        held_out=[f"{RESULTS}/baseline/reobserved_predictions.csv"] if BASELINE_COPIES else [],
    params:
        out_dir=lambda wc, output: Path(output.metrics).parent,
        n_iter=config["baseline"]["n_iter"],
        seed=config["baseline"]["seed"],
        survey=f"--survey {store(BASELINE_SURVEY)} --copies {BASELINE_COPIES}" if BASELINE_COPIES else "",
        features=f"--features {BASELINE_FEATURES}" if BASELINE_FEATURES else "",
    threads: 2
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/baseline.log",
    shell:
        "snia baseline --train {input.train} --test {input.test} -o {params.out_dir}"
        " --n-iter {params.n_iter} --seed {params.seed} {params.survey} {params.features} > {log} 2>&1"

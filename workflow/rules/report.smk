# Stage 5: every classifier side by side (Markdown + one self-contained HTML): provenance (with
# the workflow's effective configuration), the comparison table with bootstrap intervals, one
# section per classifier, the CNN's mistakes drawn from the evaluated store. With a distilled CNN,
# the ensemble it learnt from is a column too.

# One of evaluate.datasets, and the baseline's test set (common.smk checks both).
REPORT_DATASET = config["report"]["dataset"]


localrules:
    report_config,


rule report_config:
    output:
        f"{RESULTS}/report/config.yaml",
    params:
        # the configuration as the workflow uses it: config file(s) plus --config overrides
        config=config,
        files=lambda wc: ", ".join(str(p) for p in workflow.configfiles),  # Paths with --configfile
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/report_config.log",
    script:
        "../scripts/report_config.py"


rule report:
    input:
        cnn=f"{RESULTS}/evaluate/{REPORT_DATASET}/metrics.json",
        cnn_predictions=f"{RESULTS}/evaluate/{REPORT_DATASET}/predictions.csv",
        ensemble=(f"{RESULTS}/evaluate/{REPORT_DATASET}/ensemble/metrics.json"
                  if ENSEMBLE_BESIDE else []),
        baseline=f"{RESULTS}/baseline/metrics.json",
        history=[str(Path(m).parent / "history.csv") for m in TRAINED],
        store=store(REPORT_DATASET),
        train_store=store(config["train"]["dataset"]),
        config=f"{RESULTS}/report/config.yaml",
        # the architectures' compare.csv (its plot beside it) once `snakemake compare` has
        # made it: not part of the main job, which it would triple; a newer one redoes the report
        compare=lambda wc: [c for c in COMPARED[:1] if Path(c).exists()],
    output:
        markdown=f"{RESULTS}/report/report.md",
        html=f"{RESULTS}/report/report.html",
        metrics=f"{RESULTS}/report/metrics.json",
    params:
        cnn_dir=lambda wc, input: Path(input.cnn).parent,
        ensemble=lambda wc, input: (f"--ensemble {Path(input.ensemble).parent}"
                                    if input.ensemble else ""),
        baseline_dir=lambda wc, input: Path(input.baseline).parent,
        out_dir=lambda wc, output: Path(output.markdown).parent,
        target=lambda wc, output: f"'{output.markdown} (Snakemake rule report)'",
        compare=lambda wc, input: f"--compare {input.compare}" if input.compare else "",
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        "snia report --cnn {params.cnn_dir} {params.ensemble} --baseline {params.baseline_dir}"
        " --history {input.history} --store {input.store} --train-store {input.train_store}"
        " --config {input.config} {params.compare} --target {params.target} -o {params.out_dir}"
        " > {log} 2>&1"

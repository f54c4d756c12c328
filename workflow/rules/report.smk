# Stage 5: the CNN and the baseline side by side (Markdown + HTML with every plot); with a
# distilled CNN, the ensemble it learnt from is a column too.

# One of evaluate.datasets, and the baseline's test set (common.smk checks both).
REPORT_DATASET = config["report"]["dataset"]


rule report:
    input:
        cnn=f"{RESULTS}/evaluate/{REPORT_DATASET}/metrics.json",
        ensemble=(f"{RESULTS}/evaluate/{REPORT_DATASET}/ensemble/metrics.json"
                  if ENSEMBLE_BESIDE else []),
        baseline=f"{RESULTS}/baseline/metrics.json",
        history=[str(Path(m).parent / "history.csv") for m in TRAINED],
    output:
        markdown=f"{RESULTS}/report/report.md",
        html=f"{RESULTS}/report/report.html",
    params:
        cnn_dir=lambda wc, input: Path(input.cnn).parent,
        ensemble=lambda wc, input: (f"--ensemble {Path(input.ensemble).parent}"
                                    if input.ensemble else ""),
        baseline_dir=lambda wc, input: Path(input.baseline).parent,
        out_dir=lambda wc, output: Path(output.markdown).parent,
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        "snia report --cnn {params.cnn_dir} {params.ensemble} --baseline {params.baseline_dir}"
        " --history {input.history} -o {params.out_dir} > {log} 2>&1"

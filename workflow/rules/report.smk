# Stage 5: the CNN and the baseline side by side (Markdown + HTML with every plot).


rule report:
    input:
        cnn=f"{RESULTS}/evaluate/{config['report']['dataset']}/metrics.json",
        baseline=f"{RESULTS}/baseline/metrics.json",
        history=[str(Path(m).parent / "history.csv") for m in MODELS],
    output:
        markdown=f"{RESULTS}/report/report.md",
        html=f"{RESULTS}/report/report.html",
    params:
        cnn_dir=lambda wc, input: Path(input.cnn).parent,
        baseline_dir=lambda wc, input: Path(input.baseline).parent,
        out_dir=lambda wc, output: Path(output.markdown).parent,
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        "snia report --cnn {params.cnn_dir} --baseline {params.baseline_dir}"
        " --history {input.history} -o {params.out_dir} > {log} 2>&1"

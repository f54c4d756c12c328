# Stage 4: the trained CNN on labelled datasets -> predictions, metrics.json, plots.


rule evaluate:
    input:
        models=MODELS,
        store=f"{RESULTS}/stores/{{name}}.h5",
    output:
        metrics=f"{RESULTS}/evaluate/{{name}}/metrics.json",
        predictions=f"{RESULTS}/evaluate/{{name}}/predictions.csv",
    params:
        out_dir=lambda wc, output: Path(output.metrics).parent,
    threads: 2
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/evaluate_{{name}}.log",
    shell:
        "snia evaluate {input.store} --checkpoint {input.models} -o {params.out_dir} > {log} 2>&1"

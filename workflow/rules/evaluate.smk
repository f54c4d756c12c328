# Stage 4: the trained CNN on labelled datasets (`evaluate.datasets`) -> predictions,
# metrics.json (with bootstrap intervals and the provenance: checkpoints, data set, hardware),
# plots. With `train.distill` > 0 that is the distilled model, and the ensemble it
# learnt from is evaluated beside it (in the `ensemble/` subfolder) for comparison.

# The ensemble beside the distilled model (one member alone is just its teacher).
ENSEMBLE_BESIDE = DISTILL > 0 and len(MODELS) > 1
# The evaluations `rule all` asks for: every dataset of evaluate.datasets.
EVALUATIONS = [f"{RESULTS}/evaluate/{name}/{sub}metrics.json"
               for name in config["evaluate"]["datasets"]
               for sub in [""] + (["ensemble/"] if ENSEMBLE_BESIDE else [])]


rule evaluate:
    input:
        models=EVALUATED,
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


use rule evaluate as evaluate_ensemble with:
    input:
        models=MODELS,
        store=f"{RESULTS}/stores/{{name}}.h5",
    output:
        metrics=f"{RESULTS}/evaluate/{{name}}/ensemble/metrics.json",
        predictions=f"{RESULTS}/evaluate/{{name}}/ensemble/predictions.csv",
    log:
        f"{RESULTS}/logs/evaluate_{{name}}_ensemble.log",

# The architecture comparison (`snakemake compare`; the report shows it): one model per entry of
# compare.models, trained with train.settings (only the model differs; seed train.settings.seed,
# no distillation) on train.dataset, evaluated on report.dataset; then `snia compare` puts size,
# speed and quality side by side in compare.csv and compare.png.

COMPARE = config.get("compare", {})
# name -> model settings; {} = the model train.settings ships
COMPARE_MODELS = {name: (model or SETTINGS.get("model", {}))
                  for name, model in (COMPARE.get("models") or {}).items()}
COMPARE_RUNS = {name: f"{RESULTS}/compare/{name}" for name in COMPARE_MODELS}
COMPARED = [f"{RESULTS}/compare/compare.csv", f"{RESULTS}/compare/compare.png"] if COMPARE_MODELS else []


# The TrainConfig settings of each compared model: train.settings with its model (and
# compare.epochs, when set).
COMPARE_SETTINGS = {name: {**SETTINGS, "model": model,
                           **({"epochs": COMPARE["epochs"]} if COMPARE.get("epochs") else {})}
                    for name, model in COMPARE_MODELS.items()}


localrules:
    compare_train_settings,


rule compare:
    input:
        COMPARED,


use rule train_settings as compare_train_settings with:
    output:
        f"{RESULTS}/compare/{{arch}}/settings.yaml",
    wildcard_constraints:
        arch="|".join(COMPARE_MODELS) or "^$",
    params:
        settings=lambda wc: COMPARE_SETTINGS[wc.arch],
    log:
        f"{RESULTS}/logs/compare_train_settings_{{arch}}.log",


use rule train as compare_train with:
    input:
        store=store(config["train"]["dataset"]),
        settings=f"{RESULTS}/compare/{{arch}}/settings.yaml",
        gp_fits=GP_FITS,
        survey=SURVEY_STORE,
    output:
        model=f"{RESULTS}/compare/{{arch}}/best.pt",
        history=f"{RESULTS}/compare/{{arch}}/history.csv",
    wildcard_constraints:
        arch="|".join(COMPARE_MODELS) or "^$",
    log:
        f"{RESULTS}/logs/compare_train_{{arch}}.log",


use rule evaluate as compare_evaluate with:
    input:
        models=f"{RESULTS}/compare/{{arch}}/best.pt",
        store=store(config["report"]["dataset"]),
    output:
        metrics=f"{RESULTS}/compare/{{arch}}/evaluate/metrics.json",
        predictions=f"{RESULTS}/compare/{{arch}}/evaluate/predictions.csv",
    wildcard_constraints:
        arch="|".join(COMPARE_MODELS) or "^$",
    log:
        f"{RESULTS}/logs/compare_evaluate_{{arch}}.log",


rule compare_summary:
    input:
        models=[f"{run}/best.pt" for run in COMPARE_RUNS.values()],
        histories=[f"{run}/history.csv" for run in COMPARE_RUNS.values()],
        metrics=[f"{run}/evaluate/metrics.json" for run in COMPARE_RUNS.values()],
        store=store(config["report"]["dataset"]),
    output:
        csv=f"{RESULTS}/compare/compare.csv",
        plot=f"{RESULTS}/compare/compare.png",
    params:
        runs=list(COMPARE_RUNS.values()),
    # the models' inference speeds are measured one after another in this job
    threads: 2
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/compare_summary.log",
    shell:
        "snia compare {params.runs} --store {input.store} -o {output.csv} --plot {output.plot}"
        " > {log} 2>&1"

# Stage 3: train the CNN on a store, data-parallel (DDP) over `train.ranks` ranks; `train.members`
# models with seeds seed, seed + 1, ... make an ensemble (their probabilities are averaged), and
# with `train.distil` > 0 a last model ("student") learns from the ensemble (one model's speed).


localrules:
    train_settings,


rule train_settings:
    output:
        f"{RESULTS}/model/{{run}}/settings.yaml",
    wildcard_constraints:
        run=r"m\d+|student",
    params:
        settings=lambda wc: run_settings(wc.run),
    log:
        f"{RESULTS}/logs/train_settings_{{run}}.log",
    run:
        import yaml

        # The settings travel to `snia train --config` as a file (and are kept beside the model).
        Path(output[0]).write_text(yaml.safe_dump({"train": params.settings}, sort_keys=False))


rule train:
    input:
        store=store(config["train"]["dataset"]),
        settings=f"{RESULTS}/model/{{run}}/settings.yaml",
        teachers=teachers_of,
    output:
        model=f"{RESULTS}/model/{{run}}/best.pt",
        history=f"{RESULTS}/model/{{run}}/history.csv",
    wildcard_constraints:
        run=r"m\d+|student",
    params:
        run_dir=lambda wc, output: Path(output.model).parent,
        launch=launch,
    threads: config["train"]["ranks"]
    resources:
        mpi=mpi_resource(config["train"]["ranks"]),
        tasks=config["train"]["ranks"],
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/train_{{run}}.log",
    shell:
        # --restart: a checkpoint of other settings is set aside; one of these settings (a job
        # killed by the scheduler, say) is resumed.
        "{params.launch} snia train {input.store} -o {params.run_dir} --config {input.settings}"
        " --restart --no-progress > {log} 2>&1"

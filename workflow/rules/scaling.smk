# Scaling runs (`snakemake scaling`): training throughput for each number of ranks, strong and
# weak scaling, then one CSV and one plot. Each run asks for its ranks (tasks); on a cluster the
# profile turns them into nodes and GPUs (cluster/slurm: scaling_run, one rank per GPU).

# Scaling runs: one per (mode, ranks), in this order.
SCALING = config["scaling"]
SCALING_RUNS = [f"{RESULTS}/scaling/{mode}_{ranks}.json" for mode in SCALING["modes"]
                for ranks in SCALING["ranks"]]
# Runs go one after another (each waits for the one before), so that no two measurements share
# the cores and skew each other.
PREVIOUS_SCALING_RUN = {run: SCALING_RUNS[i - 1:i] for i, run in enumerate(SCALING_RUNS)}


rule scaling:
    input:
        f"{RESULTS}/scaling/scaling.csv",
        f"{RESULTS}/scaling/scaling.png",


rule scaling_summary:
    input:
        SCALING_RUNS,
    output:
        csv=f"{RESULTS}/scaling/scaling.csv",
        plot=f"{RESULTS}/scaling/scaling.png",
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/scaling_summary.log",
    shell:
        "snia scaling summarize {input} -o {output.csv} --plot {output.plot} > {log} 2>&1"


rule scaling_run:
    input:
        store=store(config["train"]["dataset"]),
        settings=f"{RESULTS}/model/m0/settings.yaml",
        gp_fits=GP_FITS,
        survey=SURVEY_STORE,
        previous=lambda wc: PREVIOUS_SCALING_RUN[f"{RESULTS}/scaling/{wc.mode}_{wc.ranks}.json"],
    output:
        f"{RESULTS}/scaling/{{mode}}_{{ranks}}.json",
    wildcard_constraints:
        mode="strong|weak",
        ranks=r"\d+",
    params:
        steps=SCALING["steps"],
        batch_size=SCALING["batch_size"],
        launch=launch,
    threads: lambda wc: int(wc.ranks)
    resources:
        mpi=lambda wc: mpi_resource(wc.ranks),
        tasks=lambda wc: int(wc.ranks),
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/scaling_{{mode}}_{{ranks}}.log",
    shell:
        "{params.launch} snia scaling run {input.store} -o {output} --mode {wildcards.mode}"
        " --steps {params.steps} --batch-size {params.batch_size} --config {input.settings}"
        " > {log} 2>&1"

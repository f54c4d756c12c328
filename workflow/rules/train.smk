# Stage 3: train the CNN on a store, data-parallel (DDP) over `train.ranks` ranks; `train.members`
# models with seeds seed, seed + 1, ... make an ensemble (their probabilities are averaged), and
# with `train.distill` > 0 a last model ("student") learns from the ensemble (one model's speed).

# The ensemble: one model per member, seeds seed, seed + 1, ...
MODELS = [f"{RESULTS}/model/m{m}/best.pt" for m in range(config["train"]["members"])]
# With `train.distill` > 0, one more model (seed + members) learns from the members' mean P(Ia):
# it is the model that is evaluated and reported; the ensemble is evaluated beside it.
DISTILL = float(config["train"]["distill"])
STUDENT = f"{RESULTS}/model/student/best.pt"
EVALUATED = [STUDENT] if DISTILL > 0 else MODELS
TRAINED = MODELS + ([STUDENT] if DISTILL > 0 else [])

SETTINGS = config["train"]["settings"]
# The survey the model is for (train.survey, a dataset read unlabelled): with re-observation
# (augment.reobserve_probability > 0) training objects are re-observed through its schedules,
# flux errors and photo-z, from the GP fits of the training store.
SURVEY = config["train"].get("survey")
if "survey" in SETTINGS:
    raise ValueError("config: train.settings.survey is set by the workflow; name the dataset "
                     "with train.survey")
REOBSERVE = float(SETTINGS.get("augment", {}).get("reobserve_probability", 0)) > 0
if REOBSERVE and not SURVEY:
    raise ValueError("config: train.settings.augment.reobserve_probability > 0 needs "
                     "train.survey (the dataset whose schedules and noise re-observe objects)")
# Self-training (train.self_training > 0): the student also learns the survey's own light curves,
# the members' P(Ia) on them as soft targets (distill.survey_share).
SELF_TRAINING = float(config["train"].get("self_training", 0))
if SELF_TRAINING > 0 and not (SURVEY and DISTILL > 0):
    raise ValueError("config: train.self_training > 0 needs train.survey (the dataset whose light "
                     "curves are learnt unlabelled) and train.distill > 0 (the student that learns "
                     "them from the members)")
if SURVEY:
    SETTINGS = {**SETTINGS, "survey": store(SURVEY)}
# what every training run reads beside its store when it re-observes (else nothing)
SURVEY_STORE = [store(SURVEY)] if SURVEY and REOBSERVE else []
GP_FITS = [f"{RESULTS}/stores/{config['train']['dataset']}.gp.h5"] if REOBSERVE else []
if "distill" in SETTINGS:
    raise ValueError("config: train.settings.distill is set per run by the workflow (the members "
                     "are the student's teachers); set the weight with train.distill")
SEED = SETTINGS.get("seed", 0)
# TrainConfig settings of each training run: member m<k> (seed + k), and the distilled student
# (seed + members), which learns from the members.
RUN_SETTINGS = {f"m{k}": {**SETTINGS, "seed": SEED + k} for k in range(len(MODELS))}
RUN_SETTINGS["student"] = {**SETTINGS, "seed": SEED + len(MODELS),
                           "distill": {"teachers": MODELS, "weight": DISTILL}}
# the student's epochs (train.student_epochs): it learns the survey's light curves besides the
# labelled ones, and kept learning past the members' 20 (docs/results.md row 57)
if config["train"].get("student_epochs"):
    RUN_SETTINGS["student"]["epochs"] = int(config["train"]["student_epochs"])
if SELF_TRAINING > 0:
    RUN_SETTINGS["student"]["distill"]["survey_share"] = SELF_TRAINING
    # Noisy Student: the survey's light curves augmented, the members' P(Ia) on them as observed
    RUN_SETTINGS["student"]["distill"]["survey_augment"] = bool(
        config["train"].get("self_training_noise", True))
# The forest's P(Ia) on the survey (train.survey_forest > 0) joins the members' in the student's
# survey soft targets: the baseline's predictions, which are of baseline.test. "auto": at the
# weight chosen on training objects re-observed through the survey (snia.train.blend), from the
# baseline's out-of-fold P(Ia) on its copies and the training store's GP fits.
AUTO_FOREST = config["train"].get("survey_forest") == "auto"
SURVEY_FOREST = 1.0 if AUTO_FOREST else float(config["train"].get("survey_forest", 0))
FOREST_PREDICTIONS = [f"{RESULTS}/baseline/predictions.csv"] if SURVEY_FOREST > 0 else []
HELD_OUT_COPIES = f"{RESULTS}/baseline/reobserved_predictions.csv"
if SURVEY_FOREST > 0:
    if not SELF_TRAINING > 0 or config["baseline"]["test"] != SURVEY:
        raise ValueError("config: train.survey_forest > 0 needs train.self_training > 0 and "
                         "baseline.test = train.survey (the forest's predictions are of "
                         "baseline.test; the student learns them on train.survey)")
    if AUTO_FOREST and not (config["baseline"].get("survey") == SURVEY
                            and int(config["baseline"].get("copies", 0)) > 0
                            and config["baseline"]["train"] == config["train"]["dataset"]):
        raise ValueError("config: train.survey_forest: auto needs baseline.survey = train.survey, "
                         "baseline.copies > 0 and baseline.train = train.dataset (the forest's "
                         "re-observed copies of the training objects choose the weight)")
    RUN_SETTINGS["student"]["distill"].update(
        survey_predictions=FOREST_PREDICTIONS[0],
        **({"survey_blend_from": HELD_OUT_COPIES} if AUTO_FOREST else {"survey_blend": SURVEY_FOREST}))
    if AUTO_FOREST:
        FOREST_PREDICTIONS += [HELD_OUT_COPIES, f"{RESULTS}/stores/{config['train']['dataset']}.gp.h5"]
RUN = "|".join(RUN_SETTINGS)  # the `run` wildcard: m0, m1, ..., student

# Redshift moves toward a survey (train.redshift_target: a dataset): that dataset's photo-z
# quantiles (no labels read) join every training run's augment settings.
REDSHIFT_TARGET = config["train"].get("redshift_target")
if REDSHIFT_TARGET and "redshift_quantiles" in SETTINGS.get("augment", {}):
    raise ValueError("config: set train.redshift_target or train.settings.augment."
                     "redshift_quantiles, not both")
TARGET_QUANTILES = [f"{RESULTS}/model/redshift_target.yaml"] if REDSHIFT_TARGET else []


localrules:
    train_settings,
    redshift_target,


rule redshift_target:
    input:
        store(REDSHIFT_TARGET) if REDSHIFT_TARGET else [],
    output:
        f"{RESULTS}/model/redshift_target.yaml",
    conda:
        SNIA_ENV
    log:
        f"{RESULTS}/logs/redshift_target.log",
    shell:
        "snia store redshifts {input} -o {output} > {log} 2>&1"


rule train_settings:
    input:
        TARGET_QUANTILES,
    output:
        f"{RESULTS}/model/{{run}}/settings.yaml",
    wildcard_constraints:
        run=RUN,
    params:
        settings=lambda wc: RUN_SETTINGS[wc.run],
    log:
        f"{RESULTS}/logs/train_settings_{{run}}.log",
    conda:
        SNIA_ENV
    script:
        "../scripts/train_settings.py"


rule train:
    input:
        store=store(config["train"]["dataset"]),
        settings=f"{RESULTS}/model/{{run}}/settings.yaml",
        teachers=lambda wc: MODELS if wc.run == "student" else [],
        forest=lambda wc: FOREST_PREDICTIONS if wc.run == "student" else [],
        gp_fits=GP_FITS,
        survey=lambda wc: [store(SURVEY)] if SURVEY_STORE or (
            wc.run == "student" and SELF_TRAINING > 0) else [],
    output:
        model=f"{RESULTS}/model/{{run}}/best.pt",
        history=f"{RESULTS}/model/{{run}}/history.csv",
    wildcard_constraints:
        run=RUN,
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

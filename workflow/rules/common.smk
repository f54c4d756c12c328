# Helpers shared by the rule files, and the config check.
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results_dir"]
# The software every rule needs (used with --sdm conda; otherwise the current environment).
SNIA_ENV = "../envs/snia.yaml"
DATA = config["data_dir"]
# Where the datasets' files are read from: the fetched data, or a random subset of it.
SUBSET_DIR = f"{RESULTS}/data/subset"
INPUT_DIR = SUBSET_DIR if config["subset"] else DATA
PLASTICC_FILES = ["plasticc_train_lightcurves.csv", "plasticc_train_metadata.csv",
                  "sniabcii_test_lightcurves_example.csv", "sniabcii_test_metadata_example.csv"]


def dataset(name):
    if name not in config["datasets"]:
        raise ValueError(f"config: no dataset named {name!r} (known: {list(config['datasets'])})")
    return config["datasets"][name]


def dataset_inputs(wildcards):
    """Light-curve and metadata files of one dataset, under the input folder."""
    d = dataset(wildcards.name)
    return {"lightcurves": [f"{INPUT_DIR}/{p}" for p in d["inputs"]],
            "metadata": [f"{INPUT_DIR}/{p}" for p in d.get("metadata", [])]}


def store(name):
    dataset(name)  # fail early, naming the dataset, when the config points nowhere
    return f"{RESULTS}/stores/{name}.h5"


def store_infos():
    return [f"{RESULTS}/stores/{name}.info.txt" for name in config["datasets"]]


def image_files():
    return [f"{RESULTS}/images/{name}.{kind}.h5" for name in config["raster"]["datasets"]
            for kind in config["raster"]["kinds"]]


def mpi_resource(ranks):
    """The `mpi` resource of a multi-rank rule: its launcher. The SLURM executor treats a rule
    with `mpi` as an MPI job and insists on more than one task, so 1-rank jobs go without."""
    return "srun" if int(ranks) > 1 else ""


def launch(wildcards, resources):
    """Shell prefix that starts `tasks` ranks (mpiexec locally, srun on SLURM); none for 1."""
    return f"{resources.mpi} -n {resources.tasks}" if int(resources.tasks) > 1 else ""


# The ensemble: one model per member, seeds seed, seed + 1, ...
MODELS = [f"{RESULTS}/model/m{m}/best.pt" for m in range(config["train"]["members"])]
# With `train.distil` > 0, one more model (seed + members) learns from the members' mean P(Ia):
# it is the model that is evaluated and reported; the ensemble is evaluated beside it.
DISTIL = float(config["train"]["distil"])
STUDENT = f"{RESULTS}/model/student/best.pt"
EVALUATED = [STUDENT] if DISTIL > 0 else MODELS
TRAINED = MODELS + ([STUDENT] if DISTIL > 0 else [])


def run_settings(run):
    """TrainConfig settings of one training run: member m<k>, or the distilled student."""
    settings = dict(config["train"]["settings"])
    seed = settings.get("seed", 0)
    if run == "student":
        settings["seed"] = seed + len(MODELS)
        settings["teachers"] = MODELS
        settings["distill_weight"] = DISTIL
    else:
        settings["seed"] = seed + int(run.removeprefix("m"))
    return settings


def teachers_of(wildcards):
    return MODELS if wildcards.run == "student" else []


# Scaling runs: one per (mode, ranks), in this order.
SCALING = config["scaling"]
SCALING_RUNS = [f"{RESULTS}/scaling/{mode}_{ranks}.json" for mode in SCALING["modes"]
                for ranks in SCALING["ranks"]]


def previous_scaling_run(wildcards):
    """Runs go one after another (each waits for the one before), so that no two measurements
    share the cores and skew each other."""
    this = SCALING_RUNS.index(f"{RESULTS}/scaling/{wildcards.mode}_{wildcards.ranks}.json")
    return SCALING_RUNS[this - 1:this]

# Helpers shared by several stages' rule files, and the config check. What belongs to one stage
# (the ensemble in train.smk, the image files in raster.smk, the scaling runs in scaling.smk)
# lives in that stage's file.
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
# A dataset's name (the `name` wildcard of every stage) is one path component.
wildcard_constraints:
    name=r"[^/.]+",  # no dot: x.gp.h5 (the GP fits) is not a store named x.gp

PLASTICC_FILES = ["plasticc_train_lightcurves.csv", "plasticc_train_metadata.csv",
                  "sniabcii_test_lightcurves_example.csv", "sniabcii_test_metadata_example.csv"]


def dataset(name):
    if name not in config["datasets"]:
        raise ValueError(f"config: no dataset named {name!r} (known: {list(config['datasets'])})")
    return config["datasets"][name]


def check_dataset_names():
    """Every key that names datasets names known ones, and the report's dataset is evaluated
    (the report shows that dataset's evaluation next to the baseline's, tested on it too)."""
    for key, names in (("images.datasets", config["images"]["datasets"]),
                       ("train.dataset", [config["train"]["dataset"]]),
                       ("train.redshift_target",
                        [config["train"]["redshift_target"]] if config["train"].get(
                            "redshift_target") else []),
                       ("evaluate.datasets", config["evaluate"]["datasets"]),
                       ("baseline.train", [config["baseline"]["train"]]),
                       ("baseline.test", [config["baseline"]["test"]]),
                       ("baseline.survey",
                        [config["baseline"]["survey"]] if config["baseline"].get("survey") else [])):
        unknown = [name for name in names if name not in config["datasets"]]
        if unknown:
            raise ValueError(f"config: {key} names {unknown}, which are not under `datasets` "
                             f"(known: {list(config['datasets'])})")
    shown, evaluated = config["report"]["dataset"], config["evaluate"]["datasets"]
    if shown not in evaluated:
        raise ValueError(f"config: report.dataset {shown!r} must be one of evaluate.datasets "
                         f"{evaluated}: the report shows that dataset's evaluation")
    if shown != config["baseline"]["test"]:
        raise ValueError(f"config: report.dataset {shown!r} must be baseline.test "
                         f"({config['baseline']['test']!r}): the report compares the CNN and "
                         f"the random forest on one dataset")


check_dataset_names()


def dataset_inputs(wildcards):
    """Light-curve and metadata files of one dataset, under the input folder."""
    d = dataset(wildcards.name)
    return {"lightcurves": [f"{INPUT_DIR}/{p}" for p in d["inputs"]],
            "metadata": [f"{INPUT_DIR}/{p}" for p in d.get("metadata", [])]}


def store(name):
    dataset(name)  # fail early, naming the dataset, when the config points nowhere
    return f"{RESULTS}/stores/{name}.h5"


# Every dataset's store summary (`rule all` asks for them, and so for every store).
STORE_INFOS = [f"{RESULTS}/stores/{name}.info.txt" for name in config["datasets"]]


def mpi_resource(ranks):
    """The `mpi` resource of a multi-rank rule: its launcher. The SLURM executor treats a rule
    with `mpi` as an MPI job and insists on more than one task, so 1-rank jobs go without."""
    return "srun" if int(ranks) > 1 else ""


def launch(wildcards, resources):
    """Shell prefix that starts `tasks` ranks (mpiexec locally, srun on SLURM); none for 1."""
    return f"{resources.mpi} -n {resources.tasks}" if int(resources.tasks) > 1 else ""

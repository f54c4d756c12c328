# Helpers shared by the rule files, and the config check.
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results_dir"]
DATA = config["data_dir"]


def dataset(name):
    return config["datasets"][name]


def dataset_inputs(wildcards):
    """Light-curve and metadata files of one dataset, under the data folder."""
    d = dataset(wildcards.name)
    return {"lightcurves": [f"{DATA}/{p}" for p in d["inputs"]],
            "metadata": [f"{DATA}/{p}" for p in d.get("metadata", [])]}


def store_infos():
    return [f"{RESULTS}/stores/{name}.info.txt" for name in config["datasets"]]


def image_files():
    return [f"{RESULTS}/images/{name}.{kind}.h5" for name in config["datasets"]
            for kind in config["raster"]["kinds"]]

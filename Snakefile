# snia workflow: raw survey files -> HDF5 stores (-> images -> model -> metrics, as stages land).
#   snakemake --cores 2                                   locally
#   snakemake --profile cluster/slurm                     on a SLURM cluster (see cluster/slurm)
from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/raster.smk"


rule all:
    input:
        store_infos(),
        image_files(),

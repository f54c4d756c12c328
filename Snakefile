# snia workflow: raw survey files -> HDF5 stores -> (images) -> CNN -> predictions -> metrics,
# plots and a report beside the random-forest baseline.
#   snakemake --profile cluster/local            on this machine (MPI ranks with mpiexec)
#   snakemake --profile cluster/slurm            on a SLURM cluster (jobs through sbatch, srun)
#   snakemake scaling --profile ...              training throughput against ranks
#   snakemake compare --profile ...              the architectures side by side (not in `all`:
#                                                the report includes their table once made)
from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/raster.smk"
include: "workflow/rules/gp.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/baseline.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/scaling.smk"


rule all:
    input:
        STORE_INFOS,
        IMAGE_FILES,
        EVALUATIONS,
        f"{RESULTS}/report/report.md",
    default_target: True


onsuccess:
    report = Path(RESULTS) / "report" / "report.md"
    if report.exists():
        print(f"snia: report at {report.resolve()} (and report.html beside it)")

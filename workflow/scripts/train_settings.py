"""One training run's settings file for `snia train --config` (kept beside the model): the run's
settings, with the target survey's photo-z quantiles (the `redshift_target` rule's file, when the
config names a `train.redshift_target`) joined to its augment settings."""

from pathlib import Path

import yaml

# `snakemake` (params, input, output) is set by Snakemake's `script:` directive.
settings = dict(snakemake.params.settings)  # noqa: F821
for path in snakemake.input:  # noqa: F821
    target = yaml.safe_load(Path(path).read_text())["augment"]
    settings["augment"] = {**settings.get("augment", {}), **target}
Path(snakemake.output[0]).write_text(  # noqa: F821
    yaml.safe_dump({"train": settings}, sort_keys=False))
Path(snakemake.log[0]).write_text(  # noqa: F821
    f"{snakemake.output[0]}: seed {settings.get('seed', 0)}, "  # noqa: F821
    f"{len(snakemake.input)} redshift target file(s) joined\n")  # noqa: F821

"""The image geometry of the model the workflow trains, as a config's `raster:` section for
`snia rasterize --config`: TrainConfig resolves it (geometry keys the config leaves out keep the
shipped model's), so the image files are exactly what the CNN sees."""

from pathlib import Path

import yaml

from snia.train import TrainConfig

# `snakemake` (params, output) is set by Snakemake's `script:` directive.
settings = TrainConfig.from_dict(snakemake.params.settings)  # noqa: F821
Path(snakemake.output[0]).write_text(  # noqa: F821
    yaml.safe_dump({"raster": dict(settings.raster)}, sort_keys=False))

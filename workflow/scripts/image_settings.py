"""The image geometry of the model the workflow trains, as a config's `raster:` section for
`snia rasterize --config`: geometry keys the training settings leave out keep the shipped model's
(as TrainConfig resolves them), so the image files are exactly what the CNN sees. Needs no torch:
an environment that only ingests and draws images can run it."""

from pathlib import Path

import yaml

from snia.raster import model_geometry

# `snakemake` (params, output) is set by Snakemake's `script:` directive.
geometry = model_geometry(snakemake.params.settings.get("raster"))  # noqa: F821
Path(snakemake.output[0]).write_text(  # noqa: F821
    yaml.safe_dump({"raster": dict(geometry)}, sort_keys=False))

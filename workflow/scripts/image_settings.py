"""The image geometry of the model the workflow trains, as a config's `raster:` section for
`snia rasterize --config`: the training settings' `raster:` as it stands, since keys it leaves out
keep RasterSpec's defaults in both commands, so the image files are exactly what the CNN sees.
Needs no torch: an environment that only ingests and draws images can run it."""

from pathlib import Path

import yaml

# `snakemake` (params, output, log) is set by Snakemake's `script:` directive.
geometry = dict(snakemake.params.settings.get("raster") or {})  # noqa: F821
Path(snakemake.output[0]).write_text(  # noqa: F821
    yaml.safe_dump({"raster": geometry}, sort_keys=False))
Path(snakemake.log[0]).write_text(  # noqa: F821
    f"{snakemake.output[0]}: image geometry {geometry or 'RasterSpec defaults'}\n")  # noqa: F821

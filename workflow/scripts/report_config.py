"""The workflow's configuration as it is used (the config file(s) plus any `--config` overrides),
as YAML for `snia report --config`: the report shows it complete in its provenance block."""

import json
from pathlib import Path

import yaml

# `snakemake` (params, output) is set by Snakemake's `script:` directive.
params = snakemake.params  # noqa: F821
plain = json.loads(json.dumps(params.config))  # plain dicts and lists, whatever Snakemake holds
Path(snakemake.output[0]).write_text(  # noqa: F821
    f"# the workflow's configuration as used (file(s): {params.files}; plus any --config)\n"
    + yaml.safe_dump(plain, sort_keys=False))
Path(snakemake.log[0]).write_text(f"{snakemake.output[0]}: from {params.files}\n")  # noqa: F821

"""The formats by name: ``reader_for`` (a format name -> its reader class) and ``expand_inputs``
(folders given as input -> their files of the format, in a stable order)."""

from __future__ import annotations

from pathlib import Path

from snia.errors import ConfigError
from snia.readers.lsst_alert import LsstAlertReader
from snia.readers.plasticc import PlasticcReader
from snia.readers.snana_fits import SnanaFitsReader
from snia.readers.snana_text import SnanaTextReader

_READERS = {"plasticc": PlasticcReader, "snana-fits": SnanaFitsReader,
            "snana-text": SnanaTextReader, "lsst-alert": LsstAlertReader}
FORMATS = tuple(_READERS)

# the files a folder given as input stands for, per format (sorted by name: a stable order)
FOLDER_PATTERNS = {"plasticc": ("*.csv", "*.csv.gz"), "snana-fits": ("*HEAD.FITS*",),
                   "snana-text": ("*.DAT",), "lsst-alert": ("*.parquet", "*.avro")}

def reader_for(fmt: str):
    """Reader class for a format name."""
    try:
        return _READERS[fmt]
    except KeyError:
        raise ConfigError(f"unknown input format {fmt!r}; choose one of {', '.join(FORMATS)}") from None


def expand_inputs(inputs, fmt: str) -> list[Path]:
    """Input paths with folders replaced by their files of the format, sorted by name (a stable,
    documented order); a missing path or a folder without such files is an error naming it."""
    patterns = FOLDER_PATTERNS[fmt]
    out = []
    for path in map(Path, inputs):
        if path.is_dir():
            found = sorted({p for pattern in patterns for p in path.glob(pattern)
                            if "metadata" not in p.name})
            if not found:
                raise FileNotFoundError(f"{path}: no {' or '.join(patterns)} files for format {fmt}")
            out += found
        elif path.exists():
            out.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist")
    return out

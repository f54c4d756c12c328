"""A section of a YAML config file, read one way for every stage: each stage reads its own section
(``train:``, ``raster:``, ``bands:``) and checks its own settings, but a file that is not YAML, or
a section of the wrong shape, is the same one-line ConfigError naming the file wherever it is read.
"""

from __future__ import annotations

from pathlib import Path

from snia.errors import ConfigError, first_line

SHAPES = {dict: "a mapping of settings", list: "a list"}


def read_section(path, key: str, shape: type = dict):
    """The ``key:`` section of the YAML file ``path`` (None where the file has none), checked to be
    of ``shape`` (dict or list)."""
    section = read_document(path).get(key)
    if section is not None and not isinstance(section, shape):
        raise ConfigError(f"{path}: '{key}:' must be {SHAPES[shape]}")
    return section


def read_document(path) -> dict:
    """The YAML file ``path``: a mapping of sections."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:  # its text runs over several lines: say where, in one
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML ({where}{problem or first_line(exc)})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a YAML mapping of sections (train:, raster:, ...)")
    return document

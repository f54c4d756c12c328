"""LSST alert packets as flat columns, from Parquet files (as brokers export them) or Avro files.

An alert holds the ``diaSource`` that triggered it, the object's earlier detections
``prvDiaSources``, its forced photometry ``prvDiaForcedSources`` and the ``diaObject``; only these
four are read (never the cutout images). ``sources`` flattens one source section into NumPy
columns, one row per source with its alert and its place in the list, whichever schema spells the
fields (``SPELLINGS``: ELAsTiCC's ``midPointTai``/``filterName``/``psFlux``, Rubin's
``midpointMjdTai``/``band``/``psfFlux``). Empty values, values that are not numbers and fields the
schema lacks are marked per row as ``Flaw``s, not dropped: the reader applies the bad-input policy.
A file is Parquet or Avro by its first bytes (``PAR1``, ``Obj\\x01``), whatever its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from snia.errors import InputError

SECTIONS = ("diaSource", "prvDiaSources", "prvDiaForcedSources", "diaObject")
SPELLINGS = {"time": ("midpointMjdTai", "midPointTai"), "band": ("band", "filterName"),
             "flux": ("psfFlux", "psFlux"), "flux_err": ("psfFluxErr", "psFluxErr")}
SOURCE_ID = {"diaSource": "diaSourceId", "prvDiaSources": "diaSourceId",
             "prvDiaForcedSources": "diaForcedSourceId"}
# diaObject field(s) -> store metadata column. ELAsTiCC's diaObject has all of them (its "not
# known" is SNANA's -9); Rubin's (schema 10) has only the position.
OBJECT_META = {"ra": ("ra",), "dec": ("dec", "decl"), "mwebv": ("mwebv",),
               "hostgal_photoz": ("hostgal_zphot",), "hostgal_photoz_err": ("hostgal_zphot_err",),
               "specz": ("hostgal_zspec",)}


@dataclass
class Flaw:
    """Rows of a section with one kind of problem; ``text(i)`` describes row i's."""

    reason: str
    mask: np.ndarray
    text: Callable[[int], str]
    field: str = ""  # the canonical field (object_id, time, ...) whose value is at fault


@dataclass
class Sources:
    """One source section of every alert of a file, flattened (one row per source)."""

    section: str
    alert: np.ndarray  # row of the alert in its file
    position: np.ndarray  # place in the section's list; -1 for the diaSource itself
    values: dict[str, np.ndarray]  # source_id, time, band (text), flux, flux_err (+ object ids)
    flaws: list[Flaw] = field(default_factory=list)

    def where(self, i: int) -> str:
        return self.section if self.position[i] < 0 else f"{self.section}[{self.position[i]}]"


def _pa():
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc


def read_alerts(path: Path):
    """The four sections of every alert of a file as an Arrow table (a section the file lacks is
    a column of nulls). A file that is neither Parquet nor Avro, or is damaged, is an InputError."""
    pa, _ = _pa()
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc})") from None
    try:
        if magic == b"PAR1":
            import pyarrow.parquet as pq

            names = pq.ParquetFile(path).schema_arrow.names
            table = pq.read_table(path, columns=[s for s in SECTIONS if s in names])
        elif magic == b"Obj\x01":
            table = _avro_table(path)
        else:
            raise InputError(f"{path}: neither a Parquet nor an Avro file (starts with {magic!r})")
    except (pa.ArrowException, ValueError, EOFError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot be read as alert packets ({str(exc).splitlines()[0]})") from None
    for name in SECTIONS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return table.select(list(SECTIONS))


def _avro_table(path: Path):
    """An Avro object container file (one record per alert, the schema in its header)."""
    import fastavro

    pa, _ = _pa()
    with open(path, "rb") as f:
        records = [{k: r.get(k) for k in SECTIONS} for r in fastavro.reader(f)]
    return pa.table({k: pa.array([r[k] for r in records]) for k in SECTIONS})


def _flat(column):
    """A struct or list-of-struct column -> (struct values, alert row, place in the list)."""
    pa, pc = _pa()
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        alert = pc.list_parent_indices(column).to_numpy().astype(np.int64)
        values = pc.list_flatten(column)
        starts = np.flatnonzero(np.r_[True, alert[1:] != alert[:-1]]) if len(alert) else alert
        lengths = np.diff(np.r_[starts, len(alert)])
        position = np.arange(len(alert)) - np.repeat(starts, lengths)
        return values, alert, position
    valid = ~column.is_null().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(valid)
    return column.filter(pa.array(valid)), rows.astype(np.int64), np.full(len(rows), -1, np.int64)


def numbers(array, kind) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An Arrow array -> (values of ``kind``, empty mask, not-a-number mask); text is parsed."""
    pa, _ = _pa()
    n = len(array)
    empty = array.is_null().to_numpy(zero_copy_only=False).astype(bool)
    bad = np.zeros(n, dtype=bool)
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        return array.fill_null(0).to_numpy(zero_copy_only=False).astype(kind), empty, bad
    values = np.zeros(n, dtype=kind)
    for i, value in enumerate(array.to_pylist()):
        if value is None:
            continue
        try:
            values[i] = (int if kind is np.int64 else float)(value.decode() if isinstance(value, bytes)
                                                             else value)
        except (ValueError, TypeError, UnicodeDecodeError):
            bad[i] = True
    return values, empty, bad


def _field(values, section: str, names: tuple[str, ...], kind, flaws: list[Flaw], required=True,
           canonical: str = ""):
    """One field of the flattened structs (the first spelling present) as NumPy, its flaws noted.
    Text fields (band) come back as strings. None when absent and not ``required``."""
    pa, pc = _pa()
    n = len(values)
    struct_names = ({values.type.field(i).name for i in range(values.type.num_fields)}
                    if pa.types.is_struct(values.type) else set())
    name = next((s for s in names if s in struct_names), None)
    if name is None:
        if required:
            spelled = " or ".join(names)
            flaws.append(Flaw("missing_field", np.ones(n, dtype=bool),
                              lambda i: f"{section} has no {spelled} field", canonical))
        return None if not required else np.zeros(n, dtype=kind if kind is not str else object)
    array = pc.struct_field(values, name)
    if kind is str:
        empty = array.is_null().to_numpy(zero_copy_only=False).astype(bool)
        flaws.append(Flaw("missing_value", empty, lambda i: f"{section}.{name} is empty", canonical))
        return np.array(["" if v is None else str(v) for v in array.to_pylist()], dtype=object)
    out, empty, bad = numbers(array, kind)
    flaws.append(Flaw("missing_value", empty, lambda i: f"{section}.{name} is empty", canonical))
    flaws.append(Flaw("non_numeric", bad,
                      lambda i: f"{section}.{name}: {array[i].as_py()!r} is not "
                                f"{'an integer' if kind is np.int64 else 'a number'}", canonical))
    return out


def sources(table, section: str) -> Sources:
    """One source section of every alert, flattened; for ``diaSource`` also the object ids
    (``object_id``, and ``ss_object_id`` where the schema has Rubin's solar-system id)."""
    pa, _ = _pa()
    column = table.column(section)
    if pa.types.is_null(column.type) or (pa.types.is_list(column.type)
                                         and pa.types.is_null(column.type.value_type)):
        empty = np.empty(0, np.int64)
        return Sources(section, empty, empty, {})  # no source of this kind in the file
    values, alert, position = _flat(column)
    flaws: list[Flaw] = []
    out = {"source_id": _field(values, section, (SOURCE_ID[section],), np.int64, flaws,
                               canonical="source_id")}
    for name, kind in (("time", np.float64), ("band", str), ("flux", np.float64),
                       ("flux_err", np.float64)):
        out[name] = _field(values, section, SPELLINGS[name], kind, flaws, canonical=name)
    if section == "diaSource":
        out["object_id"] = _field(values, section, ("diaObjectId",), np.int64, flaws,
                                  canonical="object_id")
        ss = _field(values, section, ("ssObjectId",), np.int64, [], required=False)
        out["ss_object_id"] = np.zeros(len(alert), np.int64) if ss is None else ss
    return Sources(section, alert, position, out, flaws)


def object_meta(table) -> tuple[dict[str, np.ndarray], list[Flaw]]:
    """The store's metadata columns from each alert's diaObject (NaN where absent or empty)."""
    pa, pc = _pa()
    column = table.column("diaObject").combine_chunks()
    n = len(column)
    out, flaws = {}, []
    for name, spellings in OBJECT_META.items():
        out[name] = np.full(n, np.nan)
        if not pa.types.is_struct(column.type):
            continue
        have = {column.type.field(i).name for i in range(column.type.num_fields)}
        found = next((s for s in spellings if s in have), None)
        if found is None:
            continue
        array = pc.struct_field(column, found)
        values, empty, bad = numbers(array, np.float64)
        values[empty | bad] = np.nan
        out[name] = values
        flaws.append(Flaw("non_numeric", bad, lambda i, f=found, a=array:
                          f"diaObject.{f}: {a[i].as_py()!r} is not a number"))
    return out, flaws

"""A common supernova type taxonomy, mapped from PLAsTiCC and SNANA type codes.

Every object keeps both the common class (``type``, an index into ``CLASSES``) and its survey's original
numeric code (``source_type``), so no label information is lost by the mapping.
"""

from __future__ import annotations

import re

import numpy as np

from snia.errors import ConfigError

CLASSES = ("Ia", "Ia-91bg", "Iax", "II", "Ibc", "SLSN", "other", "unknown")
INDEX = {name: i for i, name in enumerate(CLASSES)}
UNKNOWN = INDEX["unknown"]
MISSING_CODE = -1  # source_type when the survey gives no code at all

# PLAsTiCC `target` / `true_target` codes (Kessler et al. 2019, table 1 of the PLAsTiCC release notes).
PLASTICC_TARGETS = {
    90: "Ia", 67: "Ia-91bg", 52: "Iax", 42: "II", 62: "Ibc", 95: "SLSN",
    # non-supernova classes: tidal disruption, kilonova, AGN, RR Lyrae, M-dwarf, eclipsing binary,
    # Mira, micro-lensing (single, binary, string), ILOT, CaRT, PISN, and the test set's class 99.
    15: "other", 64: "other", 88: "other", 92: "other", 65: "other", 16: "other", 53: "other",
    6: "other", 991: "other", 992: "other", 993: "other", 994: "other", 995: "other", 99: "other",
}

# SNANA type names as written in SIM_COMMENT ("SN Type = IIn , MODEL = ...") or SIM_TYPE_NAME.
SNANA_NAMES = {
    "ia": "Ia", "ia-91bg": "Ia-91bg", "91bg": "Ia-91bg", "iax": "Iax", "ia-x": "Iax",
    "ii": "II", "iip": "II", "iil": "II", "iin": "II", "iib": "II", "ii-p": "II", "ii-l": "II",
    "ib": "Ibc", "ic": "Ibc", "ibc": "Ibc", "ic-bl": "Ibc", "icbl": "Ibc",
    "slsn": "SLSN", "slsn-i": "SLSN", "slsn-ii": "SLSN",
}


def snana_code_class(code: int) -> str:
    """SNANA integer type code (SIM_TYPE_INDEX / GENTYPE, or SNTYPE modulo 100) -> class name.

    Conventions: 1 = Ia, 2 = II, 3 = Ibc (classic SNANA / SPCC); 10 = Ia, 20-29 = II subtypes,
    30-39 = Ibc subtypes, 40-49 = peculiar Ia (41 = 91bg, 42/43 = Iax), 50-59 = SLSN (PLAsTiCC-era
    GENTYPE). Negative codes (-9) mean unknown.
    """
    if code < 0:
        return "unknown"
    code %= 100  # SNTYPE 101 = photometrically typed Ia, etc.
    if code in (1, 10):
        return "Ia"
    if code == 2 or 20 <= code <= 29:
        return "II"
    if code == 3 or 30 <= code <= 39:
        return "Ibc"
    if code == 41:
        return "Ia-91bg"
    if code in (42, 43):
        return "Iax"
    if 50 <= code <= 59:
        return "SLSN"
    return "other"


_SIM_COMMENT_TYPE = re.compile(r"SN\s*Type\s*=\s*([A-Za-z0-9-]+)", re.IGNORECASE)


def snana_name_class(text: str) -> str | None:
    """Class from a SIM_COMMENT ('SN Type = Ia , MODEL = ...') or a bare type name; None if absent."""
    match = _SIM_COMMENT_TYPE.search(text)
    name = (match.group(1) if match else text).strip().lower()
    if not name or name == "unknown":
        return None
    return SNANA_NAMES.get(name, "other")


def plasticc_types(codes: np.ndarray) -> np.ndarray:
    """PLAsTiCC target codes -> class indices; 0 (hidden) and unlisted codes -> unknown."""
    codes = np.asarray(codes)
    out = np.full(codes.shape, UNKNOWN, dtype=np.int8)
    for code, name in PLASTICC_TARGETS.items():
        out[codes == code] = INDEX[name]
    return out


def table() -> np.ndarray:
    dtype = np.dtype([("index", "i1"), ("name", "S16")])
    return np.array(list(enumerate(CLASSES)), dtype=dtype)


# ----------------------------------------------------------------------------- labels for learning


def labels_of(types) -> np.ndarray:
    """1.0 for SN Ia, 0.0 for every other type (the binary Ia-vs-rest target)."""
    return (np.asarray(types) == INDEX["Ia"]).astype(np.float32)


def class_list(task: str, types=()) -> list[str]:
    """The classes a model predicts, in column order: [] for a binary (Ia vs rest) model; for a
    multi-class one the chosen ``types``, or every labelled class."""
    if task == "binary":
        return []
    classes = list(types) if types else [c for c in CLASSES if c != "unknown"]
    if "Ia" not in classes:
        raise ConfigError(f"multiclass 'types' {classes} must include Ia (P(Ia) is the product)")
    return classes


def class_targets(types, classes: list[str]) -> np.ndarray:
    """Column index of each object's true type among ``classes`` (-1: not one of them)."""
    lookup = np.full(len(INDEX), -1, np.int64)
    lookup[[INDEX[c] for c in classes]] = np.arange(len(classes))
    return lookup[np.asarray(types, np.int64)]

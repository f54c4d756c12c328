"""What SNANA's fields mean, shared by the FITS (HEAD/PHOT) and text (.DAT) readers.

Both formats carry the same PHOT columns, the same type fields and the same header values, and
SNANA writes the same sentinels (-9, -999) where a header value is not known, and in a PHOT row
without a measurement (FLUXCAL = FLUXCALERR = -9). The rules live here once, so the two readers
cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from snia.lightcurve import OBS_ALIASES
from snia.taxonomy import snana_code_class, snana_name_class

# PHOT columns: the light-curve aliases, without object_id (SNANA locates objects by file or HEAD).
PHOT_ALIASES = {k: v for k, v in OBS_ALIASES.items() if k != "object_id"}
PHOT_REQUIRED = ("time", "band", "flux", "flux_err")
BYTES_PER_OBS = 40  # rough in-memory size of one observation, to turn chunk_bytes into a row count
# Store metadata column -> SNANA's spellings of that header value (upper case; the first present
# wins), HEAD columns of the FITS format and header keys of the text format alike. In a text file
# the photo-z error is often written after '+-' on the photo-z line instead (snana_text).
HEADER_META = {
    "ra": ("RA",),
    "dec": ("DECL", "DEC"),
    "mwebv": ("MWEBV",),
    "hostgal_photoz": ("HOST_GALAXY_PHOTO-Z", "HOSTGAL_PHOTOZ"),
    "hostgal_photoz_err": ("HOSTGAL_PHOTOZ_ERR",),
    "specz": ("REDSHIFT_SPEC", "HOSTGAL_SPECZ"),
}


# SNANA's "not known" values. In PHOT, FLUXCAL = FLUXCALERR = one of them marks an epoch without a
# measurement (public SNANA simulations carry such rows): not data, and not an error either.
MISSING_MARKERS = (-9.0, -999.0)
MISSING_MEASUREMENT = "missing_measurement"  # the provenance's count of such rows


def missing_measurements(flux, flux_err) -> np.ndarray:
    """Mask of PHOT rows that SNANA marks as "no measurement" (FLUXCAL = FLUXCALERR = -9 or -999).
    A negative error beside a real flux is not the marker: it stays a bad row."""
    flux, flux_err = np.asarray(flux), np.asarray(flux_err)
    return np.isin(flux_err, MISSING_MARKERS) & (flux == flux_err)


def count_missing(problems, mask: np.ndarray, flux_err, where_first: str, object_id) -> None:
    """Count SNANA's no-measurement rows (``mask``; ``where_first`` names the first, of object
    ``object_id``), which the readers leave out under either policy (they are no error), so the
    run's summary and the store's provenance say how many rows went."""
    n = int(np.count_nonzero(mask))
    if n:
        marker = float(np.asarray(flux_err)[np.flatnonzero(mask)[0]])
        problems.merge({MISSING_MEASUREMENT: n},
                       {MISSING_MEASUREMENT: f"{where_first}: object {object_id}: FLUXCAL = "
                                             f"FLUXCALERR = {marker:g}, SNANA's 'no measurement': "
                                             f"row left out"})


def is_sentinel(name: str, values) -> np.ndarray:
    """Mask of the values of store metadata column ``name`` that SNANA's sentinels mark as unknown.

    A Dec outside [-90, 90] and a spec-z <= 0 mean "not known"; so does any negative value of the
    other columns (RA is in [0, 360); redshifts, their errors and E(B-V) are never negative).
    """
    values = np.asarray(values, dtype=np.float64)
    if name == "dec":
        return np.abs(values) > 90
    if name == "specz":
        return values <= 0
    return values < 0


def sentinels_to_nan(name: str, values):
    """``values`` with SNANA's "not known" sentinels (see ``is_sentinel``) replaced by NaN; a single
    number gives a float."""
    out = np.where(is_sentinel(name, values), np.nan, np.asarray(values, dtype=np.float64))
    return out if out.ndim else float(out)


def snana_class(name=None, type_index=None, non1a=None, sntype=None) -> str:
    """Common class from SNANA type fields, most specific first; None means the field is absent.

    A type name (SIM_TYPE_NAME, SIM_COMMENT) wins unless it is blank/UNKNOWN; then a positive
    SIM_TYPE_INDEX; then SIM_NON1a (0 = Ia, a positive template index = some non-Ia we cannot name);
    last the survey's own SNTYPE. Non-positive codes are treated as "not given".
    """
    if name is not None:
        cls = snana_name_class(name)
        if cls is not None:
            return cls
    if type_index is not None and type_index > 0:
        return snana_code_class(int(type_index))
    if non1a is not None and non1a >= 0:
        return "Ia" if non1a == 0 else "other"
    if sntype is not None:
        return snana_code_class(int(sntype))
    return "unknown"

"""Band registry: (survey, filter letter) -> band name -> index -> effective wavelength.

The store keeps observations' bands as small integers (indices into this registry) and writes the
registry itself as the store's ``bands`` table, so later stages (images, models) need only the store.
Names follow sncosmo's spelling (``lsstu``, ``desg``). Wavelengths are effective wavelengths in
Angstrom from the SVO Filter Profile Service (LSST baseline and DECam throughputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snia.config_file import read_section
from snia.errors import ConfigError


@dataclass(frozen=True)
class Band:
    name: str
    survey: str
    letter: str
    wavelength: float  # effective wavelength, Angstrom


DEFAULT_BANDS = (
    Band("lsstu", "LSST", "u", 3671.0),
    Band("lsstg", "LSST", "g", 4827.0),
    Band("lsstr", "LSST", "r", 6223.0),
    Band("lssti", "LSST", "i", 7546.0),
    Band("lsstz", "LSST", "z", 8691.0),
    Band("lssty", "LSST", "y", 9712.0),
    Band("desg", "DES", "g", 4770.0),
    Band("desr", "DES", "r", 6370.0),
    Band("desi", "DES", "i", 7774.0),
    Band("desz", "DES", "z", 9155.0),
)

# PLAsTiCC numbers LSST passbands 0..5 in this order.
PLASTICC_PASSBANDS = "ugrizy"


class BandRegistry:
    """Ordered set of bands; a band's index is its position (stable: new bands go at the end)."""

    def __init__(self, bands=DEFAULT_BANDS):
        self.bands = tuple(bands)
        self._by_name = {}
        self._by_survey_letter = {}
        for index, band in enumerate(self.bands):
            if band.name in self._by_name:
                raise ConfigError(f"band {band.name!r} is defined twice in the band registry")
            self._by_name[band.name] = index
            self._by_survey_letter[(band.survey.upper(), band.letter)] = index

    @classmethod
    def from_config(cls, extra: list[dict] | None) -> "BandRegistry":
        """Default bands plus ``extra`` entries ``{name, survey, letter, wavelength}`` from config."""
        bands = list(DEFAULT_BANDS)
        for entry in extra or []:
            try:
                bands.append(Band(str(entry["name"]), str(entry["survey"]), str(entry["letter"]),
                                  float(entry["wavelength"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"bad band entry in config {entry!r}: needs name, survey, "
                                  f"letter, wavelength ({exc})") from None
        return cls(bands)

    @classmethod
    def from_config_file(cls, path) -> "BandRegistry":
        """Default bands plus those under ``bands:`` in a YAML config file (none without a file)."""
        if path is None:
            return cls()
        return cls.from_config(read_section(path, "bands", list))

    def __len__(self) -> int:
        return len(self.bands)

    def index(self, name: str) -> int:
        return self._by_name[name]

    def surveys(self) -> set[str]:
        return {survey for survey, _ in self._by_survey_letter}

    def letter_lookup(self, survey: str) -> dict[str, int]:
        """Filter letter -> band index for one survey (raises if the survey has no bands)."""
        survey = survey.upper()
        table = {letter: index for (s, letter), index in self._by_survey_letter.items() if s == survey}
        if not table:
            raise ValueError(f"survey {survey!r} has no bands in the registry "
                             f"(known surveys: {', '.join(sorted(self.surveys()))}); add its bands "
                             f"under 'bands:' in the config")
        return table

    def indices_for_letters(self, survey: str, letters: np.ndarray) -> np.ndarray:
        """Map an array of filter letters to band indices; unknown letters give -1."""
        table = self.letter_lookup(survey)
        letters = np.asarray(letters)
        out = np.full(letters.shape, -1, dtype=np.int8)
        for letter in np.unique(letters):
            key = letter.decode() if isinstance(letter, bytes) else str(letter)
            out[letters == letter] = table.get(key.strip(), -1)
        return out

    def plasticc_passbands(self) -> np.ndarray:
        """Lookup array: PLAsTiCC passband number 0..5 -> band index."""
        return np.array([self.index("lsst" + letter) for letter in PLASTICC_PASSBANDS], dtype=np.int8)

    def table(self) -> np.ndarray:
        """The registry as a structured array (fixed-length strings: parallel-HDF5 safe)."""
        dtype = np.dtype([("index", "i1"), ("name", "S16"), ("survey", "S16"), ("letter", "S4"),
                          ("wavelength", "f4")])
        rows = [(i, b.name, b.survey, b.letter, b.wavelength) for i, b in enumerate(self.bands)]
        return np.array(rows, dtype=dtype)

    @classmethod
    def from_table(cls, table: np.ndarray) -> "BandRegistry":
        return cls(Band(r["name"].decode(), r["survey"].decode(), r["letter"].decode(),
                        float(r["wavelength"])) for r in table)

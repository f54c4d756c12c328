"""LSST alert packets (ELAsTiCC and Rubin schemas; Parquet or Avro files) -> light curves.

One light curve per ``diaObjectId``: of the object's alerts (in any of the files), the latest (by
its diaSource's time; a tie goes to the later file and row) gives the history: its ``diaSource``
plus ``prvDiaSources``, each source once (de-duplicated by source id). Where that alert carries
forced photometry (``prvDiaForcedSources``), it is preferred: a visit measured both ways keeps the
forced flux; detections without a forced measurement (the triggering one: forced photometry is of
earlier visits) are added. ``flag`` is 1 for visits with a detection (a diaSource), 0 otherwise.

Units: alert fluxes are nJy (AB magnitude 31.4 - 2.5 log10 F); the store holds fluxes on SNANA's
FLUXCAL scale (zero point 27.5, as PLAsTiCC), so flux and error are multiplied by ``NJY_TO_FLUXCAL``
= 10**(-0.4 * (31.4 - 27.5)). Times are MJD (TAI). Bands are LSST's (``Y`` read as ``y``).
Metadata (ra, dec, MW E(B-V), host photo-z and its error, host spec-z) come from the latest
alert's ``diaObject`` where the schema has them (ELAsTiCC; Rubin's has only ra, dec); SNANA's -9
means "not known", and so does a bad value under ``skip`` (counted; the object stays).

Alerts of solar-system objects (no diaObjectId; Rubin's ``ssObjectId``) are left out and counted,
under either policy. A bad diaSource (or object id) makes its alert bad; a bad earlier source,
one observation: ``fail`` names the file, the alert (its row, from 0) and the field; ``skip``
leaves it out and counts it. Alerts of one object may sit in different files, so one rank reads
all files (``weights`` is one item).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from snia.errors import InputError
from snia.lightcurve import Chunk, empty_meta, offsets_from_lengths
from snia.readers.alert_packets import Flaw, object_meta, read_alerts, sources
from snia.readers.snana import BYTES_PER_OBS, sentinels_to_nan
from snia.readers.work import Piece

log = logging.getLogger(__name__)

NJY_TO_FLUXCAL = 10 ** (-0.4 * (31.4 - 27.5))
SOLAR_SYSTEM = "solar_system_alert"  # the provenance's count of alerts left out as such
SOURCE_SECTIONS = ("diaSource", "prvDiaSources", "prvDiaForcedSources")
FORCED = SOURCE_SECTIONS.index("prvDiaForcedSources")


class LsstAlertReader:
    """Reads LSST alert packets: Parquet (``*.parquet``) or Avro (``*.avro``) files."""

    atomic = True  # one item, all files: never cut

    def __init__(self, inputs, metadata, bands, problems, survey=None, chunk_bytes=16 << 20):
        if metadata:
            raise InputError("the lsst-alert format takes its metadata from each alert's diaObject; "
                             "do not pass --metadata")
        self.files = [Path(p) for p in inputs]
        self.bands = bands
        self.problems = problems
        self.survey = survey or "LSST"
        self.max_obs = max(1, int(chunk_bytes) // BYTES_PER_OBS)
        try:
            self.bands.letter_lookup(self.survey)
            self.sizes = [p.stat().st_size for p in self.files]
        except ValueError as exc:
            raise InputError(f"--survey: {exc}") from None
        except OSError as exc:
            raise InputError(f"cannot read input file: {exc}") from None

    def input_files(self) -> list[Path]:
        return list(self.files)

    def weights(self) -> list[int]:
        return [sum(self.sizes)]

    def metadata_ids(self):
        return None  # metadata lives in each alert's diaObject

    def where_metadata(self, object_id: int) -> str:
        raise NotImplementedError("lsst-alert has no separate metadata files")

    def read(self, pieces: list[Piece]):
        if not pieces:
            return
        alerts, obs, base = [], [], 0
        for k, path in enumerate(self.files):
            a, o, n = self._file(k, path, base)
            alerts.append(a)
            obs.append(o)
            base += n
        alerts = {key: np.concatenate([a[key] for a in alerts]) for key in alerts[0]}
        obs = {key: np.concatenate([o[key] for o in obs]) for key in obs[0]}
        if len(alerts["object_id"]):
            yield from self._chunks(*_lightcurves(alerts, obs, base))

    def _where(self, file: int, row: int, section: int = -1, position: int = -1) -> str:
        where = f"{self.files[file]}:alert {row}"
        if section < 0:
            return where
        return f"{where} {SOURCE_SECTIONS[section]}" + (f"[{position}]" if position >= 0 else "")

    def _report(self, k, flaws, rows, object_ids, where) -> np.ndarray:
        """Report flaws (earliest row first: the one a 'fail' run names); mask of flawed rows."""
        bad = np.zeros(len(rows), dtype=bool)
        for flaw in sorted((f for f in flaws if f.mask.any()), key=lambda f: _first(f.mask)):
            i = _first(flaw.mask)
            oid = object_ids(i)
            said = f"object {oid}: " if oid is not None else ""
            where_i = self._where(k, int(rows[i])) + (f" {where(i)}" if where else "")
            self.problems.found(flaw.reason, f"{where_i}: {said}{flaw.text(i)}", int(flaw.mask.sum()))
            bad |= flaw.mask
        return bad

    def _file(self, k: int, path: Path, base: int):
        """(alerts, observations, number of alerts) of one file: the alerts whose diaSource and
        object id are good, and their sources as observations (bad sources left out). ``key``
        numbers alerts across files (``base`` + row)."""
        table = read_alerts(path)
        n = table.num_rows
        if n == 0:
            self.problems.found("empty_file", f"{path}: no alerts")
        own = sources(table, "diaSource")
        missing = np.setdiff1d(np.arange(n), own.alert)
        if missing.size:
            self.problems.found("missing_field", f"{self._where(k, int(missing[0]))}: no diaSource "
                                                 f"(the alert's own detection)", int(missing.size))
        alert_object = np.zeros(n, np.int64)
        good = np.zeros(0, dtype=bool)
        if own.values:
            object_id = own.values["object_id"]
            good = ~self._own_flaws(k, own)
            alert_object[own.alert] = object_id
        alert_ok = np.zeros(n, dtype=bool)
        alert_ok[own.alert[good]] = True
        meta, meta_flaws = object_meta(table)
        self._report(k, [_masked(f, alert_ok) for f in meta_flaws], np.arange(n),
                     lambda i: int(alert_object[i]), None)
        rows = own.alert[good]
        alerts = {"file": np.full(len(rows), k, np.int32), "row": rows, "key": base + rows,
                  "object_id": alert_object[rows],
                  "time": own.values["time"][good] if own.values else np.zeros(0)}
        alerts.update({key: sentinels_to_nan(key, v[rows]) for key, v in meta.items()})
        parts = [self._observations(k, s, alert_ok, alert_object, base) for s in
                 (own, sources(table, "prvDiaSources"), sources(table, "prvDiaForcedSources"))]
        return alerts, {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}, n

    def _own_flaws(self, k, own) -> np.ndarray:
        """Report the diaSources' flaws; mask of the alerts left out (bad or solar-system)."""
        object_id, ss = own.values["object_id"], own.values["ss_object_id"]
        solar = (object_id == 0) & (ss != 0)
        for flaw in own.flaws:  # a solar-system alert is left out whatever it holds
            flaw.mask = flaw.mask & ~solar
        if solar.any():
            i = _first(solar)
            self.problems.merge({SOLAR_SYSTEM: int(solar.sum())}, {SOLAR_SYSTEM: (
                f"{self._where(k, int(own.alert[i]))}: ssObjectId {ss[i]} and no diaObjectId: a "
                f"solar-system object, left out")})
        zero = (object_id == 0) & ~solar
        id_flawed = np.any([f.mask for f in own.flaws if f.field == "object_id"] + [zero], axis=0)
        own.flaws.append(Flaw("missing_value", zero, lambda i: "diaSource.diaObjectId is 0 (no "
                                                               "object) and there is no ssObjectId"))
        return self._report(k, own.flaws, own.alert,
                            lambda i: None if id_flawed[i] else int(object_id[i]), None) | solar

    def _observations(self, k, src, alert_ok, alert_object, base) -> dict[str, np.ndarray]:
        """A section's good sources of good alerts as observations (fluxes converted)."""
        if not src.values:
            return _no_obs()
        of_good = alert_ok[src.alert]
        flaws = [_masked(f, of_good) for f in src.flaws]
        bad = self._report(k, flaws, src.alert, lambda i: int(alert_object[src.alert[i]]), src.where)
        keep = of_good & ~bad
        section = SOURCE_SECTIONS.index(src.section)
        label = src.values["band"][keep]
        n = int(keep.sum())
        out = {"file": np.full(n, k, np.int32), "row": src.alert[keep], "key": base + src.alert[keep],
               "section": np.full(n, section, np.int8), "position": src.position[keep],
               "kind": np.full(n, int(section == FORCED), np.int8), "label": label,
               "band": self.bands.indices_for_letters(self.survey, np.array(
                   [b.strip().lower() for b in label], dtype=str)),
               "source_id": src.values["source_id"][keep], "time": src.values["time"][keep]}
        for name in ("flux", "flux_err"):
            out[name] = (src.values[name][keep] * NJY_TO_FLUXCAL).astype(np.float32)
        return out

    def _chunks(self, alerts, obs, latest, order, lengths):
        """Chunks of whole objects, up to ``max_obs`` observations each."""
        ends = np.cumsum(lengths)
        start = 0
        while start < len(lengths):
            stop = max(start + 1, int(np.searchsorted(ends, ends[start] - lengths[start]
                                                      + self.max_obs, side="right")))
            yield self._chunk(alerts, obs, latest[start:stop], order, lengths[start:stop],
                              int(ends[start] - lengths[start]))
            start = stop

    def _chunk(self, alerts, obs, latest, order, lengths, first) -> Chunk:
        rows = order[first:first + int(lengths.sum())]
        meta = empty_meta(len(latest))
        for key in meta:
            if key in alerts:
                meta[key][:] = alerts[key][latest]
        flag = obs["flag"][rows]

        def where_obs(i):
            r = rows[i]
            return self._where(int(obs["file"][r]), int(obs["row"][r]), int(obs["section"][r]),
                               int(obs["position"][r]))

        def where_object(j):
            return self._where(int(alerts["file"][latest[j]]), int(alerts["row"][latest[j]]))

        return Chunk(object_id=alerts["object_id"][latest], offsets=offsets_from_lengths(lengths),
                     obs={"time": obs["time"][rows], "band": obs["band"][rows],
                          "flux": obs["flux"][rows], "flux_err": obs["flux_err"][rows], "flag": flag},
                     meta=meta, where_obs=where_obs, where_object=where_object,
                     band_label=obs["label"][rows], files=tuple(str(p) for p in self.files),
                     file_of_object=alerts["file"][latest].astype(np.int64))


def _lightcurves(alerts, obs, n_keys: int):
    """The latest alert of each object (objects in order of their first alert), the order of the
    observations that make their light curves, and their lengths."""
    n = len(alerts["object_id"])
    by_time = np.lexsort((alerts["row"], alerts["file"], alerts["time"], alerts["object_id"]))
    last = np.r_[alerts["object_id"][by_time][1:] != alerts["object_id"][by_time][:-1], True]
    latest = by_time[last]  # sorted by object id
    _, first = np.unique(alerts["object_id"], return_index=True)
    latest = latest[np.argsort(first, kind="stable")]  # in order of the object's first alert
    object_of_key = np.full(n_keys, -1, np.int64)
    object_of_key[alerts["key"][latest]] = np.arange(len(latest))
    obj = object_of_key[obs["key"]]  # -1: an observation of an older alert
    keep = obj >= 0
    # each source once: the first of a source id within a kind (the diaSource before its history)
    dedup = np.lexsort((np.arange(len(obj)), obs["source_id"], obs["kind"], obj))
    same = np.r_[False, (np.diff(obj[dedup]) == 0) & (np.diff(obs["kind"][dedup]) == 0)
                 & (np.diff(obs["source_id"][dedup]) == 0)]
    keep[dedup[same]] = False
    # a visit measured both ways (same time and band) keeps the forced flux, flagged as detected
    visit = np.lexsort((obs["kind"], obs["band"], obs["time"], obj))
    visit = visit[keep[visit]]
    pair = ((obj[visit][1:] == obj[visit][:-1]) & (obs["time"][visit][1:] == obs["time"][visit][:-1])
            & (obs["band"][visit][1:] == obs["band"][visit][:-1])
            & (obs["kind"][visit][1:] == 1) & (obs["kind"][visit][:-1] == 0))
    keep[visit[:-1][pair]] = False
    obs["flag"] = (obs["kind"] == 0).astype(np.int32)
    obs["flag"][visit[1:][pair]] = 1
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((obs["time"][rows], obj[rows]))]
    lengths = np.bincount(obj[rows], minlength=len(latest)).astype(np.int64)
    log.debug("lsst-alert: %d alerts, %d objects, %d observations", n, len(latest), len(order))
    return alerts, obs, latest, order, lengths


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _masked(flaw, mask):
    flaw.mask = flaw.mask & mask
    return flaw


def _no_obs() -> dict[str, np.ndarray]:
    empty = np.empty(0)
    return {"file": empty.astype(np.int32), "row": empty.astype(np.int64),
            "key": empty.astype(np.int64), "section": empty.astype(np.int8),
            "position": empty.astype(np.int64), "kind": empty.astype(np.int8),
            "label": empty.astype(object), "band": empty.astype(np.int8),
            "source_id": empty.astype(np.int64), "time": empty,
            "flux": empty.astype(np.float32), "flux_err": empty.astype(np.float32)}

"""A survey-sized run on one machine: PLAsTiCC's size, made of its real light curves, from CSV
to P(Ia), with each stage's time, speed and peak memory per rank at 1/4, 1/2 and all of N.

    python bench/survey.py [--objects N] [--ranks R] [--workdir DIR] [--keep]

1. Build: the real PLAsTiCC training and test light curves (the stores ``plasticc_train.h5`` and
   ``plasticc_test.h5``; ingested here from the fetched CSVs where absent) tiled to N objects with
   new, unique ids (object k, 0-based, is template k mod T of the T templates, training then test
   objects; its id is k + 1), written as PLAsTiCC CSV (light curves + metadata) in three parts
   (objects [0, N/4), [N/4, N/2), [N/2, N)), streamed: memory is bounded by one chunk of
   objects, not by N.
2. For each fraction (1/4: part 1; 1/2: parts 1-2; all: parts 1-3): ``snia ingest`` of those CSV
   files on R MPI ranks (``mpiexec``; one rank where mpi4py/mpiexec are missing, which the table
   says), ``snia store info``, ``snia store verify`` and ``snia classify`` (the shipped model).
   Each stage runs in fresh processes; a rank's peak memory is its own peak RSS (``wait4``'s
   ru_maxrss of that process, taken by a thin wrapper around each rank).
3. One markdown table: a row per stage and fraction with wall time, light curves/s, peak memory
   per rank (MiB) and whether it is flat in N: a stage whose peak grows from 1/4 to all by more
   than ``FLAT_SLACK`` (10 % of its 1/4 peak, at least 64 MiB: the run-to-run spread of a
   multi-threaded peak) plus the per-object arrays every stage holds by nature (the object table,
   ids, offsets, metadata, P(Ia): ``PER_OBJECT_BYTES`` per object) is marked as growing, with
   the bytes per added object.

The default N is PLAsTiCC's test set (3,492,890 objects, about 560 M observations here, 22 GB of
CSV); on a machine without the disk or the hours, choose a smaller N (the table says which).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stores import REPO, plasticc_store  # bench/stores.py, beside this script

PLASTICC_N = 3_492_890
CHUNK_OBJECTS = 8192  # objects per written CSV chunk (about 1.3 M rows): the build's memory
FLAT_SLACK, FLAT_SLACK_MIB = 0.1, 64  # what a peak may move between 1/4 and all of N, flat
PER_OBJECT_BYTES = 200  # the per-object arrays a stage holds by nature (ids, offsets, metadata)
PEAK_TAG = "survey-peak-rss-kib"
LC_COLUMNS = ("object_id", "mjd", "passband", "flux", "flux_err", "detected_bool")
META_COLUMNS = ("object_id", "ra", "decl", "ddf_bool", "hostgal_specz", "hostgal_photoz",
                "hostgal_photoz_err", "mwebv", "target")
FRACTIONS = (("1/4", 1), ("1/2", 2), ("all", 3))  # name, CSV parts it ingests


def peak_of(command: list[str]) -> int:
    """Run ``command`` (this process's file descriptors inherited: an MPI rank's PMI connection
    too) and print its own peak RSS to stderr, tagged with the MPI rank from the environment."""
    child = subprocess.Popen(command, close_fds=False)
    _, status, usage = os.wait4(child.pid, 0)
    rank = next((os.environ[k] for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
                 if k in os.environ), "0")
    print(f"{PEAK_TAG} {rank} {usage.ru_maxrss}", file=sys.stderr, flush=True)
    return os.waitstatus_to_exitcode(status)


# -- the data set ---------------------------------------------------------------------------------

def templates(train: Path, test: Path) -> dict:
    """Every object of the two stores, training then test, as flat arrays (12,848 objects and
    2.1 M observations for PLAsTiCC's: about 50 MB)."""
    from snia.bands import PLASTICC_PASSBANDS
    from snia.store import Store

    passband = {f"lsst{letter}": i for i, letter in enumerate(PLASTICC_PASSBANDS)}
    parts = []
    for path in (train, test):
        with Store(path) as store:
            batch = store.batch(slice(None))
            lookup = np.array([passband.get(b.name, -1) for b in store.bands.bands], np.int8)
        parts.append((batch, lookup[batch.obs["band"]]))
    out = {"lengths": np.concatenate([np.diff(b.offsets) for b, _ in parts]),
           "passband": np.concatenate([p for _, p in parts])}
    if (out["passband"] < 0).any():
        raise SystemExit("survey.py: the template stores hold bands other than LSST ugrizy")
    for k in ("time", "flux", "flux_err", "flag"):
        out[k] = np.concatenate([b.obs[k] for b, _ in parts])
    for k in ("ra", "dec", "ddf", "specz", "hostgal_photoz", "hostgal_photoz_err", "mwebv",
              "source_type"):
        out[k] = np.concatenate([b.meta[k] for b, _ in parts])
    out["offsets"] = np.concatenate(([0], np.cumsum(out["lengths"])))
    return out


def write_part(tpl: dict, first: int, stop: int, lc_path: Path, meta_path: Path,
               chunk: int = CHUNK_OBJECTS) -> None:
    """Objects [first, stop) of the tiled data set as PLAsTiCC CSV, ``chunk`` objects at a time."""
    import pyarrow as pa
    import pyarrow.csv as csv

    n_templates = len(tpl["lengths"])
    options = csv.WriteOptions(quoting_style="none")
    lc_writer = meta_writer = None
    try:
        for a in range(first, stop, chunk):
            k = np.arange(a, min(a + chunk, stop), dtype=np.int64)
            t = k % n_templates
            lengths = tpl["lengths"][t]
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            rows = np.repeat(tpl["offsets"][t] - starts, lengths) + np.arange(lengths.sum())
            lc = pa.table({"object_id": np.repeat(k + 1, lengths), "mjd": tpl["time"][rows],
                           "passband": tpl["passband"][rows], "flux": tpl["flux"][rows],
                           "flux_err": tpl["flux_err"][rows], "detected_bool": tpl["flag"][rows]})
            specz = tpl["specz"][t]
            meta = pa.table({"object_id": k + 1, "ra": tpl["ra"][t], "decl": tpl["dec"][t],
                             "ddf_bool": tpl["ddf"][t],
                             "hostgal_specz": np.where(np.isfinite(specz), specz, -9),
                             "hostgal_photoz": tpl["hostgal_photoz"][t],
                             "hostgal_photoz_err": tpl["hostgal_photoz_err"][t],
                             "mwebv": tpl["mwebv"][t], "target": tpl["source_type"][t]})
            if lc_writer is None:
                lc_writer = csv.CSVWriter(lc_path, lc.schema, write_options=options)
                meta_writer = csv.CSVWriter(meta_path, meta.schema, write_options=options)
            lc_writer.write_table(lc)
            meta_writer.write_table(meta)
    finally:
        for writer in (lc_writer, meta_writer):
            if writer is not None:
                writer.close()


# -- the stages -----------------------------------------------------------------------------------

def mpi_launcher(ranks: int) -> list[str] | None:
    """``mpiexec -n R`` when MPI can run here, else None (one rank)."""
    here = Path(sys.executable).parent / "mpiexec"
    exe = str(here) if here.exists() else shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    if exe is None or ranks < 2:
        return None
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else []
    return [exe, *extra, "-n", str(ranks)]


def run_stage(command: list[str], launcher: list[str] | None = None) -> tuple[float, list[float]]:
    """Wall seconds and each process's peak RSS (MiB, in rank order) of one stage."""
    wrapped = [sys.executable, __file__, "--peak-of", *command]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    done = subprocess.run([*(launcher or []), *wrapped], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode:
        said = ([line for line in done.stderr.splitlines() if line.strip() and PEAK_TAG not in line]
                or ["(nothing on stderr)"])[-1]  # snia's one line
        raise SystemExit(f"survey.py: {' '.join(map(str, command[2:5]))} ... failed: {said}")
    # ranks share stderr: a tag may follow another rank's unfinished line
    peaks = sorted((int(rank), int(kib) / 1024)
                   for rank, kib in re.findall(rf"{PEAK_TAG} (\d+) (\d+)", done.stderr))
    return seconds, [mib for _, mib in peaks]


def snia(*args) -> list[str]:
    return [sys.executable, "-m", "snia", *map(str, args)]


def check_store(path: Path, n: int) -> None:
    """The store holds exactly ``n`` objects, with unique ids 1..n (read with plain h5py)."""
    import h5py

    with h5py.File(path, "r") as f:
        ids = f["objects/object_id"][...]
    if len(ids) != n or len(np.unique(ids)) != n or ids.min() != 1 or ids.max() != n:
        raise SystemExit(f"survey.py: {path} holds {len(ids)} objects ({len(np.unique(ids))} "
                         f"distinct ids), expected ids 1..{n}")


def flat_note(rows: list[dict]) -> None:
    """The last column: whether a stage's peak per rank is flat between 1/4 and all of N: it may
    move by FLAT_SLACK (of the 1/4 peak, at least FLAT_SLACK_MIB: thread timing moves a peak by
    that much from run to run) plus PER_OBJECT_BYTES per added object."""
    by_stage: dict[str, list[dict]] = {}
    for row in rows:
        by_stage.setdefault(row["stage"], []).append(row)
    for stage_rows in by_stage.values():
        first, last = stage_rows[0], stage_rows[-1]
        reference = max(first["peaks"])
        grown = max(last["peaks"]) - reference
        extra = last["objects"] - first["objects"]
        allowed = max(FLAT_SLACK_MIB, FLAT_SLACK * reference) + extra * PER_OBJECT_BYTES / (1 << 20)
        per_object = grown * (1 << 20) / extra if extra else 0.0
        for row in stage_rows:
            row["flat"] = ""
        first["flat"] = "(reference)"
        last["flat"] = (f"flat ({grown:+.0f} MiB over 1/4: {per_object:.0f} B per added object)"
                        if grown <= allowed else
                        f"GROWS: {grown:+.0f} MiB over 1/4 ({per_object:.0f} B per added object)")


def table(rows: list[dict], n: int, ranks_note: str) -> str:
    flat_note(rows)
    lines = [f"N = {n:,} objects; {ranks_note}",
             "",
             "| stage | fraction | objects | wall s | LC/s | peak MiB per rank | flat in N? |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        peaks = " / ".join(f"{p:.0f}" for p in r["peaks"])
        digits = 2 if r["seconds"] < 1 else 1  # a stage of a fraction of a second keeps two
        lines.append(f"| {r['stage']} | {r['fraction']} | {r['objects']:,} | {r['seconds']:.{digits}f} | "
                     f"{r['objects'] / r['seconds']:,.0f} | {peaks} | {r['flat']} |")
    return "\n".join(lines)


def survey(n: int, ranks: int, work: Path, train: Path, test: Path, checkpoint=None) -> str:
    bounds = [0, n // 4, n // 2, n]
    launcher = mpi_launcher(ranks)
    ranks_note = (f"ingest on {ranks} MPI ranks ({Path(launcher[0]).name})" if launcher else
                  "ingest on 1 rank" + ("" if ranks < 2 else " (no mpiexec or mpi4py here)"))
    rows = []
    lc = [work / f"lc_{i}.csv" for i in (1, 2, 3)]
    meta = [work / f"meta_{i}.csv" for i in (1, 2, 3)]
    build_names = ("objects 0..N/4", "objects N/4..N/2", "objects N/2..N")
    for i in range(3):
        seconds, peaks = run_stage([sys.executable, __file__, "--write-part", str(bounds[i]),
                                    str(bounds[i + 1]), str(lc[i]), str(meta[i]), "--train-store",
                                    str(train), "--test-store", str(test)])
        rows.append({"stage": "build CSV", "fraction": build_names[i],
                     "objects": bounds[i + 1] - bounds[i], "seconds": seconds, "peaks": peaks})
    model = ["--checkpoint", str(checkpoint)] if checkpoint else []
    for name, parts in FRACTIONS:
        objects, store = bounds[parts], work / f"survey_{parts}.h5"
        stages = [("ingest", snia("ingest", "--format", "plasticc", *lc[:parts], "--metadata",
                                  *meta[:parts], "-o", store, "--overwrite"), launcher),
                  ("store info", snia("store", "info", store), None),
                  ("store verify", snia("store", "verify", store), None),
                  ("classify", snia("classify", store, *model, "-o", work / f"p_ia_{parts}.csv"), None)]
        for stage, command, launch in stages:
            seconds, peaks = run_stage(command, launch)
            rows.append({"stage": stage, "fraction": name, "objects": objects, "seconds": seconds,
                         "peaks": peaks})
            if stage == "ingest":
                check_store(store, objects)
        with open(work / f"p_ia_{parts}.csv") as f:
            if sum(1 for _ in f) - 1 != objects:
                raise SystemExit(f"survey.py: classify wrote other than {objects} rows")
        if parts < 3:
            store.unlink()
            shutil.rmtree(work / f"survey_{parts}.h5.shards", ignore_errors=True)
    rows.sort(key=lambda r: ["build CSV", "ingest", "store info", "store verify",
                             "classify"].index(r["stage"]))
    return table(rows, n, ranks_note)


def main() -> None:
    if sys.argv[1:2] == ["--peak-of"]:  # a stage's process (or an MPI rank) under its wrapper
        sys.exit(peak_of(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=PLASTICC_N,
                        help=f"N, objects in the survey (default {PLASTICC_N:,}: PLAsTiCC's test set)")
    parser.add_argument("--ranks", type=int, default=os.cpu_count() or 1, help="MPI ranks of ingest")
    parser.add_argument("--workdir", type=Path, help="where the CSV and stores go (default: a "
                        "temporary folder); emptied of them at the end unless --keep")
    parser.add_argument("--keep", action="store_true", help="keep the CSV, the store and P(Ia)")
    parser.add_argument("--train-store", type=Path, help="default: results/stores/plasticc_train.h5")
    parser.add_argument("--test-store", type=Path, help="default: results/stores/plasticc_test.h5")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped model")
    parser.add_argument("--write-part", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_part:
        first, stop, lc, meta = args.write_part
        from snia.errors import SniaError

        try:
            tpl = templates(args.train_store, args.test_store)
        except SniaError as exc:  # a damaged or foreign store: one line
            sys.exit(f"survey.py: {exc}")
        write_part(tpl, int(first), int(stop), Path(lc), Path(meta))
        return
    if args.objects < 4 or args.ranks < 1:
        parser.error("--objects must be at least 4 (one object per part) and --ranks at least 1")
    for given in (args.train_store, args.test_store, args.checkpoint):
        if given is not None and not given.is_file():
            parser.error(f"{given} does not exist")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="snia-survey-"))
    work.mkdir(parents=True, exist_ok=True)
    before = set(work.iterdir())
    try:
        train = plasticc_store("plasticc_train", args.train_store, work)
        test = plasticc_store("plasticc_test", args.test_store, work)
        print(survey(args.objects, args.ranks, work, train, test, args.checkpoint))
    finally:
        if not args.keep:
            for path in set(work.iterdir()) - before:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            if args.workdir is None:
                work.rmdir()
    print(f"\ncommand: python bench/survey.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()

"""Ingestion benchmark: snia at 1 and 2 MPI ranks against pandas, side by side in one run.

    python bench/ingest.py [--data DIR] [--tile 20] [--repeat 3]

1. Speed: the PLAsTiCC training set (1.42 M observations). The peer approach is pandas
   ``read_csv`` of light curves and metadata + ``groupby`` into per-object arrays; snia writes a
   validated HDF5 store. Each timing is the best of --repeat runs after one warm-up run (imports and
   the page cache are warm for everyone); for snia it is the slowest rank's time. Targets: snia at
   1 rank >= 3x pandas; 2 ranks >= 1.6x 1 rank.
2. Memory: peak RSS per rank for ingesting the training set and a CSV made by tiling it --tile
   times with new object ids (fresh processes, no warm-up). Target: the tiled run stays within
   2x of the 1x run, since memory is bounded by the chunk size, not the input size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LC, META = "plasticc_train_lightcurves.csv", "plasticc_train_metadata.csv"


def pandas_baseline(lc: Path, meta: Path, with_metadata: bool = True) -> float:
    """What peers do (e.g. avocado): read both CSVs, group the observations by object into
    per-object arrays, each paired with its metadata record. ``with_metadata=False`` leaves out
    the pairing (arrays only), the leanest version."""
    import pandas as pd

    start = time.perf_counter()
    df = pd.read_csv(lc)
    records = pd.read_csv(meta).set_index("object_id").to_dict("index")
    objects = {}
    for object_id, group in df.groupby("object_id", sort=False):
        arrays = {c: group[c].to_numpy() for c in ("mjd", "passband", "flux", "flux_err",
                                                   "detected_bool")}
        if with_metadata:
            arrays["meta"] = records[object_id]
        objects[object_id] = arrays
    return time.perf_counter() - start


def worker(args) -> None:
    """One MPI rank: (warm-up +) timed ingests; rank 0 prints a JSON line."""
    from snia.ingest import run_ingest
    from snia.parallel import MAX, world

    comm = world()
    out = Path(args.out)
    times = []
    for i in range(args.repeat + (1 if args.warm else 0)):
        comm.barrier()
        start = time.perf_counter()
        result = run_ingest("plasticc", [args.lc], out, [args.meta], progress=False,
                            overwrite=True, comm=comm, layout="virtual")
        elapsed = comm.allreduce(time.perf_counter() - start, op=MAX)
        if i or not args.warm:
            times.append(elapsed)
    rss = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # MiB on Linux
    if comm.rank == 0:
        print(json.dumps({"seconds": min(times), "n_obs": result.n_obs, "rss_mib": rss}))


def launch(n: int, lc: Path, meta: Path, out: Path, repeat: int, warm: bool) -> dict:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(n), sys.executable,
           __file__, "--worker", "--lc", str(lc), "--meta", str(meta), "--out", str(out),
           "--repeat", str(repeat)] + (["--warm"] if warm else [])
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"benchmark worker failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tile(lc: Path, meta: Path, k: int, folder: Path) -> tuple[Path, Path]:
    """The data set k times over, object ids shifted by 10**9 per copy (streamed, bounded memory)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv

    out_lc, out_meta = folder / f"tiled{k}_lc.csv", folder / f"tiled{k}_meta.csv"
    for src, dst in ((lc, out_lc), (meta, out_meta)):
        table = csv.read_csv(src)
        options = csv.WriteOptions(quoting_style="none")
        with csv.CSVWriter(dst, table.schema, write_options=options) as writer:
            for copy in range(k):
                ids = pc.add(table["object_id"], pa.scalar(copy * 10**9, pa.int64()))
                writer.write_table(table.set_column(0, "object_id", ids))
    return out_lc, out_meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "plasticc")
    parser.add_argument("--tile", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per launch")
    parser.add_argument("--rounds", type=int, default=3, help="alternating 1-/2-rank launches")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lc", "--meta", "--out", dest="unused", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.worker:
        wp = argparse.ArgumentParser()
        for name in ("--lc", "--meta", "--out"):
            wp.add_argument(name)
        wp.add_argument("--repeat", type=int)
        wp.add_argument("--warm", action="store_true")
        wp.add_argument("--worker", action="store_true")
        return worker(wp.parse_args())

    from snia.data import fetch_plasticc

    data = fetch_plasticc(args.data)
    lc, meta = data / LC, data / META
    pandas_baseline(lc, meta)  # warm-up
    pandas_s = min(pandas_baseline(lc, meta) for _ in range(args.repeat))
    lean_s = min(pandas_baseline(lc, meta, with_metadata=False) for _ in range(args.repeat))
    with tempfile.TemporaryDirectory(dir=REPO / "results" if (REPO / "results").is_dir() else None) as tmp:
        tmp = Path(tmp)
        # Alternate 1- and 2-rank launches so slow phases of this noisy machine hit both alike.
        runs = {1: [], 2: []}
        for _ in range(args.rounds):
            for n in (1, 2):
                runs[n].append(launch(n, lc, meta, tmp / f"r{n}.h5", args.repeat, warm=True))
        one, two = (min(runs[n], key=lambda r: r["seconds"]) for n in (1, 2))
        n_obs = one["n_obs"]
        print(f"PLAsTiCC training set: {n_obs:,} observations (best of {args.rounds} launches x "
              f"{args.repeat} runs each, after a warm-up run; pandas best of {args.repeat})")
        print(f"  {'method':<30}{'seconds':>9}{'obs/s':>14}")
        for name, s in (("pandas read_csv+groupby", pandas_s),
                        ("  (arrays only, no metadata)", lean_s), ("snia, 1 rank", one["seconds"]),
                        ("snia, 2 ranks", two["seconds"])):
            print(f"  {name:<30}{s:>9.3f}{n_obs / s:>14,.0f}")
        speed1 = pandas_s / one["seconds"]
        speed2 = one["seconds"] / two["seconds"]
        print(f"  ratio snia 1 rank / pandas : {speed1:5.2f}x  (target >= 3.0x: "
              f"{'met' if speed1 >= 3 else 'MISSED'})")
        print(f"  ratio snia 2 ranks / 1 rank: {speed2:5.2f}x  (target >= 1.6x: "
              f"{'met' if speed2 >= 1.6 else 'MISSED'})")
        print(f"  (for reference: snia 1 rank / pandas arrays only: {lean_s / one['seconds']:.2f}x; "
              f"snia also validates every row, sorts, checksums its inputs and writes HDF5)")

        tiled_lc, tiled_meta = tile(lc, meta, args.tile, tmp)
        print("\nPeak RSS per rank (MiB), fresh processes, default 16 MiB chunks:")
        for n in (1, 2):
            small = launch(n, lc, meta, tmp / "m1.h5", 1, warm=False)
            big = launch(n, tiled_lc, tiled_meta, tmp / "m20.h5", 1, warm=False)
            worst = max(b / s for b, s in zip(big["rss_mib"], small["rss_mib"]))
            print(f"  {n} rank(s): 1x {small['rss_mib']}  {args.tile}x ({big['n_obs']:,} obs) "
                  f"{big['rss_mib']}  worst ratio {worst:.2f}x (target <= 2x: "
                  f"{'met' if worst <= 2 else 'MISSED'})")
            shutil.rmtree(tmp / "m20.h5.shards", ignore_errors=True)


if __name__ == "__main__":
    main()

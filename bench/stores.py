"""The PLAsTiCC stores the benchmarks read: the one given, else the workflow's, else one ingested
here from the fetched data (a temporary folder)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = {"plasticc_train": ("plasticc_train_lightcurves.csv", "plasticc_train_metadata.csv"),
         "plasticc_test": ("sniabcii_test_lightcurves_example.csv", "sniabcii_test_metadata_example.csv")}


def plasticc_store(name: str, given, tmp: Path) -> Path:
    if given:
        return Path(given)
    candidate = REPO / "results" / "stores" / f"{name}.h5"
    if candidate.exists():
        return candidate
    from snia.data import fetch_plasticc
    from snia.ingest import run_ingest

    data = fetch_plasticc(REPO / "data" / "plasticc")
    lightcurves, metadata = FILES[name]
    path = tmp / f"{name}.h5"
    run_ingest("plasticc", [data / lightcurves], path, [data / metadata], progress=False)
    return path

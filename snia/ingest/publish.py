"""The ingestion's last steps on rank 0: the store of virtual datasets over the shards, the
finished store moved into place (the store file last), and its provenance record."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import sys
from pathlib import Path

from snia import __version__
from snia.ingest.guard import shard_dir_of
from snia.store import manifest_summary, write_virtual_store


def write_virtual(tmp_store, output, all_counts, all_checksums, bands, attrs) -> None:
    """The store file (at ``tmp_store``) of virtual datasets over every rank's shard."""
    # Sources are referenced by their final location, relative to the store's folder.
    final_dir = shard_dir_of(output)
    shards = [(final_dir / f"shard-{r:05d}.h5", n_obj, n_obs)
              for r, (n_obj, n_obs) in enumerate(all_counts)]
    # write_virtual_store makes paths relative to the store's own folder: pretend it is final.
    write_virtual_store(tmp_store, shards, bands, attrs, relative_to=output.parent,
                        checksums=all_checksums)


def publish(tmp_store: Path, work: Path, output: Path, layout: str) -> None:
    """Move the finished store into place; the store file itself is renamed last."""
    if output.exists():
        output.unlink()  # first, so no moment shows a complete-looking store over wrong shards
    old_shards = shard_dir_of(output)
    if old_shards.exists():
        shutil.rmtree(old_shards)
    if layout == "virtual":
        os.replace(work / "shards", old_shards)
    os.replace(tmp_store, output)
    shutil.rmtree(work, ignore_errors=True)


def provenance_record(reader, hashes, nranks, fmt, survey, split, on_error, layout, compression,
                problems) -> dict:
    inputs = [{"path": str(Path(p).resolve()), "bytes": Path(p).stat().st_size,
               "sha256": hashes[str(p)]} for p in reader.input_files()]
    return {"snia_version": __version__, "format": fmt, "inputs": inputs,
            "manifest": manifest_summary(inputs), "ranks": nranks,
            "layout": layout, "compression": compression, "survey": survey, "split": split,
            "on_error": on_error, "skipped": dict(problems.counts),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)}

"""A store's input manifest: ``STORE.manifest.tsv`` beside ``STORE.h5``, one line per file the
store was ingested from (its name, size in bytes and sha256), and one digest for all of them.

A data set of 20,216 SNANA files is one number and one digest in a report, not 20,216 names: the
store's provenance records ``manifest`` = {files, bytes, sha256, root}, where sha256 is the digest
of the manifest file's bytes (``sha256sum STORE.manifest.tsv`` shows it) and root the folder the
names are relative to. Names are relative to the inputs' common folder, so the same files ingested
from another place give the same manifest and digest. The store's provenance keeps every input's
absolute path, size and sha256 too (``snia store verify`` compares them), so a manifest can be
written again from the store alone, and a store ingested before manifests existed has the same
digest computed from its record (``manifest_summary``).

Format: UTF-8 text, a header line ``file<TAB>bytes<TAB>sha256``, then one line per input in the
order of ingestion; a backslash, tab or newline in a name is written ``\\\\``, ``\\t``, ``\\n``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from snia.errors import StoreError
from snia.files import atomic_path, sha256_of

SUFFIX = ".manifest.tsv"
HEADER = "file\tbytes\tsha256"
ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def manifest_path(store_path) -> Path:
    """``results/stores/x.h5`` -> ``results/stores/x.manifest.tsv``."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.stem + SUFFIX)


def _root(paths: list[Path]) -> Path | None:
    """The folder every input is in (None: no inputs, or none shared, e.g. relative and absolute
    paths recorded by hand: the names are then the whole paths)."""
    try:
        return Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else None
    except ValueError:
        return None


def _escaped(name: str) -> str:
    return "".join(ESCAPES.get(c, c) for c in name)


def manifest_text(inputs: list[dict]) -> tuple[str, str | None]:
    """The manifest of ``inputs`` (the provenance's records: absolute ``path``, ``bytes``,
    ``sha256``) and the folder its names are relative to."""
    paths = [Path(i["path"]) for i in inputs]
    root = _root(paths)
    lines = [HEADER]
    for entry, path in zip(inputs, paths):
        name = path.relative_to(root).as_posix() if root is not None else path.as_posix()
        size = int(entry.get("bytes") or 0)
        lines.append(f"{_escaped(name)}\t{size}\t{entry.get('sha256') or '-'}")
    return "\n".join(lines) + "\n", (str(root) if root is not None else None)


def manifest_summary(inputs: list[dict]) -> dict:
    """What the provenance records of the manifest: files, total bytes, the digest (sha256 of the
    manifest's text) and the root folder of the names."""
    text, root = manifest_text(inputs)
    return {"files": len(inputs), "bytes": int(sum(int(i.get("bytes") or 0) for i in inputs)),
            "sha256": hashlib.sha256(text.encode()).hexdigest(), "root": root}


def write_manifest(store_path, inputs: list[dict]) -> Path:
    """Write ``STORE.manifest.tsv`` beside the store (atomically); returns its path."""
    path = manifest_path(store_path)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(manifest_text(inputs)[0].encode("utf-8"))
    return path


def read_manifest(path) -> list[dict]:
    """The manifest's lines as {file, bytes, sha256} (names unescaped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != HEADER:
        raise StoreError(f"{path}: not a store manifest (its first line is not {HEADER!r})")
    back = {v: k for k, v in ESCAPES.items()}
    out = []
    for line in lines[1:]:
        name, size, digest = line.split("\t")
        parts, k = [], 0
        while k < len(name):
            if name[k] == "\\" and name[k:k + 2] in back:
                parts.append(back[name[k:k + 2]])
                k += 2
            else:
                parts.append(name[k])
                k += 1
        out.append({"file": "".join(parts), "bytes": int(size), "sha256": digest})
    return out


def manifest_problems(store_path, provenance: dict) -> list[str]:
    """A manifest beside the store that is not the one the store records (``snia store verify``);
    none beside it, or none recorded (a store ingested before manifests), is not a problem."""
    recorded, path = provenance.get("manifest"), manifest_path(store_path)
    if not recorded or not path.is_file() or sha256_of(path) == recorded["sha256"]:
        return []
    return [f"{path} is not the manifest of this store's inputs (its sha256 differs from the "
            f"store's record {recorded['sha256'][:12]}; written for another store?)"]

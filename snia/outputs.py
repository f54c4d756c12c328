"""What every command that writes checks before any work: that no output is one of its inputs,
and that each output can be written.

An output is refused when it is an input under another name: the same resolved path (through
symlinks or ``..``) or the same file (hard links: same device and inode). Files a command writes
inside its output folder are checked the same way, so ``report --cnn E -o E`` (which would replace
E/metrics.json) is refused as well as ``rasterize S -o S``. A symlink loop met on the way is named,
in one line, instead of Python's ``RuntimeError: Symlink loop``. An output file that is an existing
folder, or whose folder is missing or read-only, is refused before the work too, not after it.
The messages are one line (ConfigError) naming both paths.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from snia.errors import ConfigError


def real_path(path, what: str = "path") -> Path:
    """``path`` resolved through symlinks and ``..`` (it need not exist); a symlink loop is a
    ConfigError naming the path."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError: 'Symlink loop from ...' (Python 3.11)
        raise ConfigError(f"{what} {path}: cannot be resolved ({exc}); a symlink loop? remove or "
                          f"fix that link") from None


def same_file(a, b) -> bool:
    """Whether ``a`` and ``b`` are one existing file (hard links, symlinks: same st_dev, st_ino)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, RuntimeError):  # one of them does not exist (or loops: real_path names it)
        return False


def same_path(a, b) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder, existing or not."""
    return real_path(a) == real_path(b) or same_file(a, b)


def shown(path) -> str:
    """A path as given, with what it resolves to when that differs."""
    try:
        real = Path(path).resolve()
    except (RuntimeError, OSError):
        return str(path)
    return str(path) if Path(path).absolute() == real else f"{path} (= {real})"


def check_not_inputs(inputs, outputs, written=()) -> None:
    """Refuse, naming both paths, an output (file or folder) or a file to be ``written`` inside
    an output folder that is one of the ``inputs`` (files or folders). Inputs that do not exist
    are left to the command, which names them in its own words."""
    inputs = [Path(p) for p in inputs if p is not None]
    reals = [(p, real_path(p, "input")) for p in inputs]
    for out in [*outputs, *written]:
        if out is None:
            continue
        out_real = real_path(out, "output")
        for given, real in reals:
            if out_real == real or same_file(out, given):
                raise ConfigError(f"the output {shown(out)} is the input {shown(given)}: writing it "
                                  f"would replace that input; choose another output path")


def check_output_file(path, create_folder: bool = False) -> None:
    """Refuse an output file that is a folder, or whose folder is missing (unless the command
    creates it: ``create_folder``) or not writable."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"output {path} is a folder; give the name of a file to write")
    folder = path.parent
    if create_folder:
        check_output_folder(folder)
        return
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: folder {folder} is not writable")


def check_output_folder(path) -> None:
    """Refuse an output folder that is a file, or that cannot be created or written (the nearest
    existing folder above it is read-only)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output {path} is a file, not a folder; give a folder name")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot create {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: folder {existing} is not writable")


# ENOSPC: no space left on the device; EDQUOT: the user's quota; EFBIG: the file-size limit
FULL = {errno.ENOSPC: ("No space left on device", "the disk is full"),
        errno.EDQUOT: ("Disk quota exceeded", "the disk quota is exceeded"),
        errno.EFBIG: ("File too large", "the file-size limit is reached")}


def _full_kind(exc: BaseException) -> str | None:
    if isinstance(exc, OSError) and exc.errno in FULL:
        return FULL[exc.errno][1]
    if isinstance(exc, (OSError, RuntimeError)):  # h5py raises either, with the errno in the text
        return next((kind for text, kind in FULL.values() if text in str(exc)), None)
    return None


def disk_full(exc: BaseException | None) -> BaseException | None:
    """The OSError, in ``exc`` or the exceptions it was raised from or while handling, that says
    a disk, a quota or the file-size limit is full (h5py's may carry the errno only in their text)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _full_kind(exc):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def full_disk_message(exc: BaseException, output=None) -> str:
    """One line: what is full, where, and that nothing was written."""
    where = output or getattr(exc, "filename", None)
    place = f" writing {where}" if where else ""
    return (f"{_full_kind(exc)}{place}: nothing was written (what was being written was removed; "
            f"outputs completed before, such as earlier checkpoints, are kept); free some space or "
            f"write elsewhere")

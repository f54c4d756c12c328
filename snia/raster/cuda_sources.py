"""Loader of the CUDA C sources in ``kernels/`` (the ``cupy`` backend's ``raster.cu``).

Installed, the ``.cu`` files are package data of ``snia.kernels`` (pyproject maps ``kernels/`` to
it); from a plain checkout on ``PYTHONPATH`` that package does not exist and they are read from
``<repo>/kernels/``. The text is led by ``#line 1 "<name>"`` so compiler messages name the
``.cu`` file and its lines; NVRTC compiles it at run time through a cached ``cupy.RawModule``.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
from pathlib import Path

DEFAULT_OPTIONS = ("-std=c++17",)


def source_dir():
    """Folder of the ``.cu`` files: installed package data, else the checkout's ``kernels/``."""
    if importlib.util.find_spec("snia.kernels") is not None:
        return importlib.resources.files("snia.kernels")
    return Path(__file__).resolve().parents[2] / "kernels"


def cuda_source(name: str = "raster.cu") -> str:
    """The text of kernel source ``name``, led by ``#line 1 "<name>"``."""
    text = source_dir().joinpath(name).read_text(encoding="utf-8")
    return f'#line 1 "{name}"\n{text}'


@functools.lru_cache(maxsize=None)
def load_module(name: str = "raster.cu", options: tuple[str, ...] = DEFAULT_OPTIONS):
    """The compiled ``cupy.RawModule`` of source ``name`` (compiled once per process and options;
    CuPy also caches the binary on disk)."""
    import cupy

    return cupy.RawModule(code=cuda_source(name), options=tuple(options))

"""CUDA C sources of the ``cupy`` rasterization backend: ``raster.cu`` (design notes at its top).

Nothing but data lives here: ``kernels/`` stays at the top of the repository and is installed as
the package ``snia.kernels`` (pyproject.toml) so the ``.cu`` files ship as package data. They are
read and compiled by ``snia.raster.cuda_sources`` (``cuda_source``, ``load_module``) and launched
by ``snia.raster.cupy.rasterize_cupy``.
"""

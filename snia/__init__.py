"""snia: find Type Ia supernovae in survey light curves (store -> images -> CNN -> metrics).

Kept light on purpose: heavy libraries (h5py, pyarrow, astropy, mpi4py) are imported inside the
functions that need them, so ``import snia`` and ``snia --help`` stay fast.
"""

__version__ = "0.1.0"

"""Data preparation: velocity-model families, acoustic forward modelling, SEG-Y I/O and HDF5 datasets."""

from core import __version__

__all__ = ["__version__"]

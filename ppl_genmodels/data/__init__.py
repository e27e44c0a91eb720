"""Data loaders. Each takes a path to files in a standard format (IDX, .npz, .amat) and returns
NumPy arrays; nothing is downloaded. See :mod:`ppl_genmodels.data.images` (file formats) and
:mod:`ppl_genmodels.data.datasets` (named data sets for training)."""

from . import datasets, images
from .datasets import *  # noqa: F401,F403  (the public names are datasets.__all__)
from .images import *  # noqa: F401,F403  (the public names are images.__all__)

__all__ = list(images.__all__) + list(datasets.__all__)

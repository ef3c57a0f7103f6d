"""Datasets of the study (MNIST, Fashion-MNIST, Imagenette, Imagewoof) and embedded samples."""

from lumos.data.samples import mnist5k

__all__ = ["mnist5k"]

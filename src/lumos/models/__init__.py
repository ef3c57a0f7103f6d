"""Models of the study, pretrained ImageNet models, and safe checkpoints."""

from lumos.models.cnn import MnistCNN, MnistMLP

__all__ = ["MnistCNN", "MnistMLP"]

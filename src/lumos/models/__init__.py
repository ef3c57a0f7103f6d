"""Models of the study, pretrained ImageNet models, and safe checkpoints.

- :class:`MnistCNN`, :class:`MnistMLP`: the study's classifiers for 28x28 grayscale images.
- :mod:`lumos.models.zoo`: architectures by name (``build``), torchvision ResNet-18 / VGG-16
  with 10-class heads, ``pretrained("efficientnet-lite0")``, and ``mnist5k_cnn()`` (trained,
  cached).
- :mod:`lumos.models.checkpoint`: safetensors + JSON sidecar; never unpickles.
"""

from lumos.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lumos.models.cnn import MnistCNN, MnistMLP

__all__ = ["CheckpointError", "MnistCNN", "MnistMLP", "load_checkpoint", "save_checkpoint"]

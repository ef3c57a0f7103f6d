"""Model specs to classifiers: the one place the CLI, the dataset store and the demos resolve
``--model``.

A spec is a lumos checkpoint (``.safetensors`` with its JSON sidecar), ``mnist5k-cnn`` (the
embedded trained MNIST CNN), ``efficientnet-lite0`` (ImageNet weights shipped as a package), a
torchvision classification model name (weights from torch's cache, or ``weights=FILE``),
``timm:NAME`` (weights from timm's cache or ``weights=FILE``), a Hugging Face model folder
written by ``save_pretrained``, or ``hf:ORG/NAME`` (a hub id already in the Hugging Face cache;
:mod:`lumos.models.hub`). Nothing is downloaded. :func:`resolve` returns the classifier (eval
mode, returning one tensor of scores) and a fingerprint: which weights, for the store's
settings hash.
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lumos.errors import UserError
from lumos.models.classifier import Classifier
from lumos.models.tensorio import file_digest


def resolve(spec: str, weights: str | os.PathLike[str] | None = None
            ) -> tuple[Classifier, dict[str, Any]]:
    """The classifier ``spec`` names (eval mode) and its fingerprint for the settings hash.

    Raises
    ------
    lumos.errors.UserError
        One line saying what is wrong: missing file, damaged checkpoint, unknown name, weights
        not on this machine.
    """
    from lumos.models import hub

    if spec == "mnist5k-cnn":
        from lumos.models.zoo import MNIST5K_RECIPE, mnist5k_cnn, recipe_key

        return (Classifier(mnist5k_cnn(), [str(d) for d in range(10)], [0.0], [1.0], spec, 28),
                {"spec": spec, "recipe": recipe_key(MNIST5K_RECIPE)})
    if spec.startswith("timm:"):
        return _timm(spec[5:], weights)
    if hub.is_huggingface(spec):
        return hub.huggingface(spec)
    path = Path(spec)
    if weights is None and (path.suffix in (".safetensors", ".pt", ".pth") or path.exists()):
        return _checkpoint(path), {"spec": path.name, "digest": file_digest(path)} \
            if path.is_file() else {"spec": path.name}
    if spec == "efficientnet-lite0":
        from lumos.experiments.photos import pretrained

        return pretrained(spec), {"spec": spec}
    if weights is not None:
        return _torchvision_file(spec, Path(weights))
    return _torchvision(spec), {"spec": spec, "weights": "torchvision DEFAULT"}


def wrap_module(model: nn.Module, normalization: tuple[list[float], list[float]] | None,
                input_size: int | None, classes: list[str] | None,
                ) -> tuple[Classifier, dict[str, Any]]:
    """A user's ``nn.Module`` as a classifier: an eval-mode deep copy (the user's model is never
    moved or changed), fingerprinted by its weights."""
    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a spec string or a torch.nn.Module, got "
                        f"{type(model).__name__}")
    mean, std = normalization or ([0.0], [1.0])
    size = int(input_size or (28 if len(mean) == 1 else 224))
    own = copy.deepcopy(model).eval()
    h = hashlib.sha256()
    for name, tensor in own.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if classes is None:
        with torch.no_grad():
            n = int(own(torch.zeros(1, len(mean), size, size)).shape[-1])
        classes = [str(k) for k in range(n)]
    name = type(model).__name__
    return Classifier(own, list(classes), list(mean), list(std), name, size), {
        "spec": name, "digest": h.hexdigest()[:16]}


def _checkpoint(path: Path) -> Classifier:
    from lumos.models.checkpoint import CheckpointError, load_checkpoint

    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        model, meta = load_checkpoint(path)
    except (CheckpointError, ValueError, OSError) as err:
        raise UserError(f"cannot load checkpoint {path}: {err}") from err
    norm = meta.get("normalization") or {"mean": [0.0], "std": [1.0]}
    kwargs = (meta.get("architecture") or {}).get("kwargs") or {}
    classes = meta.get("classes") or [str(k) for k in range(int(kwargs.get("n_classes", 10)))]
    size = int(meta.get("input_size") or (28 if len(norm["mean"]) == 1 else 224))
    return Classifier(model, [str(c) for c in classes], list(norm["mean"]), list(norm["std"]),
                      path.name, size)


def _torchvision(spec: str) -> Classifier:
    try:
        import torchvision
    except ImportError as err:
        raise UserError(f"{spec!r} is not a file; torchvision names need torchvision: "
                        "pip install 'lumos[vision]'") from err
    if spec not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(f"--model {spec!r} is neither a file, 'efficientnet-lite0', timm:NAME, "
                        "a Hugging Face model, nor a torchvision classification model name")
    try:
        weights = torchvision.models.get_model_weights(spec).DEFAULT
        model = torchvision.models.get_model(spec, weights=weights)
    except Exception as err:  # no internet and not cached: torch.hub raises URLError/OSError
        raise UserError(f"cannot get ImageNet weights for {spec!r} ({type(err).__name__}); "
                        "download them once with internet into the torch cache "
                        "(~/.cache/torch/hub/checkpoints)") from err
    tf = weights.transforms()
    return Classifier(model.eval(), list(weights.meta["categories"]), list(tf.mean),
                      list(tf.std), spec, int(tf.crop_size[0]))


def _torchvision_file(name: str, weights: Path) -> tuple[Classifier, dict[str, Any]]:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(f"--model {name!r} is not a torchvision classification model name")
    state = _read(weights)
    model = torchvision.models.get_model(name, weights=None, num_classes=_n_classes(state))
    return _with_state(model, state, name, weights, (224, None, None))


def _timm(name: str, weights: str | os.PathLike[str] | None
          ) -> tuple[Classifier, dict[str, Any]]:
    try:
        import timm
    except ImportError as err:
        raise UserError("timm:NAME needs timm: pip install timm") from err
    from lumos.models import hub

    if weights is None:
        model, path = hub.timm_model(name)
        return _classifier(model, f"timm:{name}", hub.timm_config(model)), {
            "spec": f"timm:{name}", "weights": path.name, "digest": file_digest(path)}
    if name.split(".")[0] not in timm.list_models():
        raise UserError(f"--model timm:{name}: timm has no model {name!r}")
    state = _read(Path(weights))
    model = timm.create_model(name, pretrained=False, num_classes=_n_classes(state))
    return _with_state(model, state, f"timm:{name}", Path(weights), hub.timm_config(model))


def _read(weights: Path) -> dict[str, Tensor]:
    from lumos.models.checkpoint import CheckpointError, read_tensors

    try:
        return read_tensors(weights)
    except CheckpointError as err:
        raise UserError(str(err)) from err


def _n_classes(state: dict[str, Tensor]) -> int:
    """Rows of the last 2-D weight of a state dict: the classifier head's output count."""
    heads = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    if not heads:
        raise UserError("the weights file has no linear layer to read the class count from")
    return int(heads[-1].shape[0])


def _with_state(model: nn.Module, state: dict[str, Tensor], name: str, weights: Path,
                config: tuple[int, list[float] | None, list[float] | None],
                ) -> tuple[Classifier, dict[str, Any]]:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"--weights {weights} does not fit {name}: {first}") from err
    return _classifier(model, name, config), {"spec": name, "weights": weights.name,
                                              "digest": file_digest(weights)}


def _classifier(model: nn.Module, name: str,
                config: tuple[int, list[float] | None, list[float] | None]) -> Classifier:
    from lumos.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from lumos.models.imagenet_classes import IMAGENET_CLASSES

    size, mean, std = config
    model.eval()
    with torch.no_grad():
        n = int(model(torch.zeros(1, 3, size, size)).shape[-1])
    classes = list(IMAGENET_CLASSES) if n == len(IMAGENET_CLASSES) else [str(k) for k in range(n)]
    return Classifier(model, classes, mean or list(IMAGENET_MEAN), std or list(IMAGENET_STD),
                      name, size)


__all__ = ["resolve", "wrap_module"]

"""Models from timm and Hugging Face ``transformers``, with weights already on this machine.

Nothing here downloads: ``timm:NAME`` takes its weights from a local file (``--weights``) or
from the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``) or torch's hub cache, where timm puts them; a Hugging Face model
is a folder written by ``save_pretrained`` (``config.json`` plus safetensors weights) or a hub
id (``hf:ORG/NAME``) whose files are in the Hugging Face cache. A Hugging Face classifier
returns a ``ModelOutput``; the classifier made here returns its ``logits``
(:class:`~lumos.models.classifier.Logits`), with the class names, input size and
normalisation of its image processor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumos.errors import UserError
from lumos.models.classifier import Classifier, Logits

_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache this process uses (read from the environment each time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface")
    return Path(home) / "hub"


def cached_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of ``filenames`` of hub repo ``repo_id`` in the local cache, else None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir())
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def timm_weights(name: str) -> Path | None:
    """Where timm's pretrained weights for ``name`` are cached here (HF or torch hub cache)."""
    import timm

    try:
        cfg = timm.get_pretrained_cfg(name)
    except Exception:   # no pretrained config for that name (or tag)
        return None
    if cfg is None:
        return None
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        found = cached_file(hub_id.split("@")[0], _WEIGHT_FILES)
        if found is not None:
            return found
    url = getattr(cfg, "url", None)
    if url:
        local = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if local.is_file():
            return local
    return None


def timm_model(name: str) -> tuple[nn.Module, Path]:
    """timm's ``name`` with its cached pretrained weights, and where they were read from."""
    import timm

    if name.split(".")[0] not in timm.list_models():
        raise UserError(f"--model timm:{name}: timm has no model {name.split('.')[0]!r}")
    path = timm_weights(name)
    if path is None:
        raise UserError(f"no pretrained weights for timm:{name} on this machine (lumos does not "
                        f"download): put them in the Hugging Face cache ({hf_cache_dir()}) or "
                        "pass --weights FILE")
    model = timm.create_model(name, pretrained=True,
                              pretrained_cfg_overlay={"file": str(path)})
    return model.eval(), path


def timm_config(model: nn.Module) -> tuple[int, list[float], list[float]]:
    """``(input side, mean, std)`` from a timm model's data config."""
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=model)
    return int(cfg["input_size"][-1]), list(cfg["mean"]), list(cfg["std"])


def is_huggingface(spec: str) -> bool:
    """Whether ``spec`` names a Hugging Face model: ``hf:ID``, or a ``save_pretrained`` folder."""
    path = Path(spec)
    return spec.startswith("hf:") or (path.is_dir() and (path / "config.json").is_file())


def huggingface(spec: str) -> tuple[Classifier, dict[str, Any]]:
    """The classifier of a ``save_pretrained`` folder or a cached hub id (``hf:ORG/NAME``)."""
    try:
        from transformers import AutoModelForImageClassification
    except ImportError as err:
        raise UserError("Hugging Face models need transformers: pip install transformers") \
            from err
    source = spec[3:] if spec.startswith("hf:") else spec
    local = Path(source).is_dir()
    try:
        model = AutoModelForImageClassification.from_pretrained(
            source, local_files_only=True, cache_dir=None if local else hf_cache_dir())
    except (OSError, ValueError, KeyError) as err:
        where = "is not a Hugging Face image classifier" if local else \
            f"is not in the Hugging Face cache ({hf_cache_dir()}; lumos does not download)"
        raise UserError(f"--model {spec}: {source} {where} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from err
    size, mean, std = _processor_config(source, model, local)
    labels = getattr(model.config, "id2label", None) or {}
    classes = [str(labels.get(k, k)) for k in range(int(model.config.num_labels))]
    name = Path(source).name if local else source
    fingerprint: dict[str, Any] = {"spec": f"hf:{name}" if not local else name}
    weights = [p for p in (Path(source) / f for f in _WEIGHT_FILES) if p.is_file()] if local \
        else [p for p in [cached_file(source, _WEIGHT_FILES)] if p is not None]
    if weights:
        from lumos.models.tensorio import file_digest

        fingerprint["digest"] = file_digest(weights[0])
    return Classifier(Logits(model.eval()).eval(), classes, mean, std, name, size), fingerprint


def _processor_config(source: str, model: nn.Module, local: bool
                      ) -> tuple[int, list[float], list[float]]:
    """Input side and normalisation from the model's image processor, else its config."""
    config: Any = model.config
    side: Any = getattr(config, "image_size", 224) or 224
    size = int(side[0] if isinstance(side, (list, tuple)) else side)
    mean, std = _IMAGENET
    try:
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(
            source, local_files_only=True, cache_dir=None if local else hf_cache_dir())
    except Exception:   # no preprocessor_config.json: the config's size, ImageNet statistics
        return size, list(mean), list(std)
    crop = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
    if isinstance(crop, dict):
        size = int(crop.get("height") or crop.get("shortest_edge") or size)
    elif isinstance(crop, int):
        size = crop
    mean = list(getattr(processor, "image_mean", None) or mean)
    std = list(getattr(processor, "image_std", None) or std)
    return size, mean, std


__all__ = ["cached_file", "hf_cache_dir", "huggingface", "is_huggingface", "timm_config",
           "timm_model", "timm_weights"]

"""Hugging Face cases of ``bench/model_sweep.py``: the settings users hit, per model type.

A case is ``"<model type>/<setting>"`` for every image classifier of ``tests/lrp/hf_models.py``
(the first class of each model type) and every setting of :data:`SETTINGS`. A setting the model
does not allow by itself (no eager attention, a fixed input size, three channels only) is a
``skip``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from _sweep_cases import Skip, _first_line, _x, check_model

#: Setting -> what it tries.
SETTINGS = {
    "eager": "attn_implementation='eager' (models with an sdpa path; sdpa is their default)",
    "sdpa": "attn_implementation='sdpa' asked for explicitly",
    "batch1+3": "batch 1 and batch 3",
    "nonsquare": "an input 1.5 times as wide as high",
    "gray": "num_channels=1 and a 1-channel input",
    "tuple": "model(x, return_dict=False) in the user's wrapper: the model returns a tuple",
    "backbone": "AutoModel (no head) with a classifier head the user wrote around it",
}


def _types() -> dict[str, str]:
    from lrp import hf_models

    kinds: dict[str, str] = {}
    for kind, name in hf_models.classes():
        if name in hf_models.NOT_BUILT or name in hf_models.NOT_IMAGES or kind in kinds:
            continue
        kinds[kind] = name
    return kinds


def names() -> list[str]:
    """Every HF case name."""
    return [f"{kind}/{setting}" for kind in _types() for setting in SETTINGS]


class UserHead(nn.Module):
    """A head a user writes around a backbone: pooled features, then a linear layer."""

    def __init__(self, backbone: nn.Module, features: int, classes: int = 5) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(features, classes)

    def features(self, x: Tensor) -> Tensor:
        out = self.backbone(x)
        h = getattr(out, "pooler_output", None)
        if h is None:
            h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        if h.dim() == 4:
            h = h.mean((2, 3))
        elif h.dim() == 3:
            h = h.mean(1)
        return h.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


class TupleOutput(nn.Module):
    """A user's wrapper that asks the model for a tuple (``return_dict=False``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Any:
        return self.model(x, return_dict=False)


def _config(kind: str, **extra: Any) -> Any:
    import transformers

    from lrp import hf_models

    kwargs, _ = hf_models.CONFIGS[kind]
    return transformers.AutoConfig.for_model(kind, num_labels=5, **{**kwargs, **extra})


def _build(kind: str, setting: str) -> tuple[nn.Module, int, int]:
    """``(model, side, channels)`` for one case."""
    import transformers

    from lrp import hf_models

    name = _types()[kind]
    side = hf_models.CONFIGS[kind][1]
    cls = getattr(transformers, name)
    torch.manual_seed(0)
    if setting in ("eager", "sdpa"):
        if not getattr(cls, "_supports_sdpa", False):
            raise Skip(f"{name} has no sdpa attention path")
        return cls._from_config(_config(kind), attn_implementation=setting).eval(), side, 3
    if setting == "gray":
        config = _config(kind)
        for holder in (config, getattr(config, "vision_config", None)):
            if holder is not None and hasattr(holder, "num_channels"):
                holder.num_channels = 1
                return cls(config).eval(), side, 1
        raise Skip("the config has no num_channels")
    if setting == "tuple":
        return TupleOutput(cls(_config(kind)).eval()).eval(), side, 3
    if setting == "backbone":
        config = _config(kind)
        config = getattr(config, "vision_config", None) or config
        backbone = transformers.AutoModel.from_config(config).eval()
        with torch.no_grad():
            features = UserHead(backbone, 1).features(_x(side)).shape[1]
        return UserHead(backbone, features).eval(), side, 3
    return cls(_config(kind)).eval(), side, 3


def _inputs(setting: str, side: int, channels: int) -> list[Tensor]:
    if setting == "batch1+3":
        return [_x(side, batch=1), _x(side, batch=3)]
    if setting == "nonsquare":
        return [_x((side, side * 3 // 2))]
    return [_x(side, channels=channels)]


def run(case: str) -> tuple[str, str]:
    """Build and check one HF case."""
    kind, setting = case.split("/")
    try:
        model, side, channels = _build(kind, setting)
        xs = _inputs(setting, side, channels)
        with torch.no_grad():
            for x in xs:
                model(x)
    except Skip:
        raise
    except Exception as err:
        raise Skip(f"does not build/run: {_first_line(err)}") from err
    return check_model(model, xs, case, side, channels)

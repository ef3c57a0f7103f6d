"""Model-randomization sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps").

An explanation that explains the *model* must change when the model's weights are destroyed.
The check re-initialises layers of a deep copy (never the user's model), explains the same
inputs for the same targets again, and measures how similar the new attributions are to the
original ones, per layer:

- ``"cascading"``: randomise from the output layer down, cumulatively (the paper's main test);
- ``"independent"``: randomise one layer at a time, the rest trained.

An explanation whose attributions stay similar after the whole network is randomised (an edge
detector, for example) is flagged: it reflects the input, not the model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import check_attribution, check_choice
from lumos.metrics.similarity import spearman, ssim

#: ``(model, inputs, target) -> attribution``: explains ``inputs`` with the given model.
ModelExplainFn = Callable[[nn.Module, Tensor, TargetLike], Tensor]


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, from input to output.

    Order follows module registration, which for sequential-style models is the order of the
    forward pass; pass ``layers`` explicitly to :func:`model_randomization` otherwise.
    """
    return [name for name, module in model.named_modules()
            if any(True for _ in module.parameters(recurse=False))]


def randomize(model: nn.Module, layers: Sequence[str], seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose ``layers`` get freshly drawn parameters.

    Each parameter is redrawn uniformly from ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` with
    ``fan_in`` the fan-in of the module's weight (PyTorch's default scale for linear and
    convolution layers; normalisation layers use fan-in 1). Draws come from a CPU generator
    seeded with ``seed`` and the layer name, so they are the same on every device and do not
    depend on, or disturb, the global RNG. Buffers (BatchNorm statistics) are kept.
    """
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise ValueError(f"no module named {unknown[0]!r} in the model; randomizable layers: "
                         f"{randomizable_layers(model)}")
    clone = copy.deepcopy(model)
    cloned = dict(clone.named_modules())
    with torch.no_grad():
        for name in layers:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + _stable_hash(name))
            params = list(cloned[name].parameters(recurse=False))
            weights = [p for p in params if p.dim() >= 2]
            fan_in = weights[0][0].numel() if weights else 1
            bound = 1.0 / math.sqrt(fan_in)
            for p in params:
                drawn = torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1
                p.copy_((drawn * bound).to(p.dtype))
    return clone


def _stable_hash(text: str) -> int:
    return sum((i + 1) * ord(ch) for i, ch in enumerate(text)) % 1_000_003


@dataclass(frozen=True)
class RandomizationResult:
    """Similarity between original and randomized attributions, per layer and sample.

    Attributes
    ----------
    mode:
        ``"cascading"`` or ``"independent"``.
    layers:
        Row labels: for cascading, row ``i`` has layers ``layers[0..i]`` randomized (top
        first); for independent, row ``i`` has only ``layers[i]`` randomized.
    spearman, ssim:
        ``(len(layers), N)`` similarities; ``ssim`` is ``None`` for non-image inputs.
    threshold:
        The flag threshold on the mean absolute Spearman correlation of the last row.
    """

    mode: str
    layers: list[str]
    spearman: Tensor
    ssim: Tensor | None
    threshold: float

    @property
    def final_similarity(self) -> float:
        """Mean |Spearman| after the last randomization (cascading: the whole network)."""
        return float(self.spearman[-1].abs().mean())

    @property
    def flagged(self) -> bool:
        """True when the explanation does not change enough: it fails the sanity check."""
        return self.final_similarity >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, ready for JSON."""
        return {"mode": self.mode, "layers": self.layers, "threshold": self.threshold,
                "flagged": self.flagged, "final_similarity": self.final_similarity,
                "spearman": self.spearman.mean(1).tolist(),
                "ssim": None if self.ssim is None else self.ssim.mean(1).tolist()}


def model_randomization(model: nn.Module, x: Tensor, explain: ModelExplainFn,
                        target: TargetLike = None, *, mode: str = "cascading",
                        layers: Sequence[str] | None = None, absolute: bool = False,
                        seed: int = 0, threshold: float = 0.5) -> RandomizationResult:
    """Run the model-randomization sanity check.

    Parameters
    ----------
    model:
        The trained model; only deep copies are randomized.
    x, target:
        Inputs and the targets to explain (the same targets for every randomized model).
    explain:
        ``(model, x, target) -> attribution``, e.g.
        ``lambda m, x, t: lumos.IntegratedGradients(m).attribute(x, target=t)``.
    mode:
        ``"cascading"`` (from the top, cumulative) or ``"independent"`` (one layer at a time).
    layers:
        Layer names in forward order (default :func:`randomizable_layers`).
    absolute:
        Compare ``|attribution|`` instead of signed attributions.
    seed:
        Seeds the new weights.
    threshold:
        The explanation is flagged when the mean ``|Spearman|`` after the last randomization is
        at least this (1 = unchanged, 0 = unrelated).
    """
    x = check_input(x)
    check_choice("mode", mode, ("cascading", "independent"))
    names = list(layers) if layers is not None else randomizable_layers(model)
    if not names:
        raise ValueError("the model has no layers with parameters to randomize")
    order = names[::-1]
    prepare = (lambda a: a.abs()) if absolute else (lambda a: a)
    original = prepare(_explained(explain, model, x, target))
    rows_spearman, rows_ssim = [], []
    for i, name in enumerate(order):
        chosen = order[:i + 1] if mode == "cascading" else [name]
        randomized = prepare(_explained(explain, randomize(model, chosen, seed), x, target))
        rows_spearman.append(spearman(original, randomized))
        if x.dim() == 4:
            rows_ssim.append(ssim(original, randomized))
    return RandomizationResult(mode, order, torch.stack(rows_spearman),
                               torch.stack(rows_ssim) if rows_ssim else None, threshold)


def _explained(explain: ModelExplainFn, model: nn.Module, x: Tensor, target: TargetLike) -> Tensor:
    attribution = explain(model, x, target)
    return check_attribution(x, attribution).detach()

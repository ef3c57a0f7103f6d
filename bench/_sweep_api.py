"""API cases of ``bench/model_sweep.py``: lumos's own settings on torchvision and timm models.

A case is ``"<model>/<setting>"``. Each setting compares ``LRP(model).attribute`` (EpsilonPlus,
calibrated BatchNorm statistics) with what it must equal: a fresh attributor, the samples one
by one, the same target spelled another way, or the contiguous input; ``api`` is the verdict
when they differ (relative to the heatmap's largest value, 1e-4 in float32).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from _sweep_cases import Skip, _first_line, _guarded, _x
from lumos.lrp.errors import LRPUnsupportedError

#: Relative to the heatmap's largest value; float32 vs float64 differ more (epsilon rules divide
#: by activations near zero), so the exact comparisons (batch, targets) run in float64.
_TOL = 1e-4


def _tv_vit() -> tuple[nn.Module, int]:
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                             hidden_dim=32, mlp_dim=64, num_classes=10), 32


def _timm(name: str, side: int, **kwargs: object) -> Callable[[], tuple[nn.Module, int]]:
    def make() -> tuple[nn.Module, int]:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=10, **kwargs), side
    return make


def _tv(name: str, side: int) -> Callable[[], tuple[nn.Module, int]]:
    def make() -> tuple[nn.Module, int]:
        import torchvision

        return torchvision.models.get_model(name, num_classes=10), side
    return make


MODELS: dict[str, Callable[[], tuple[nn.Module, int]]] = {
    "tv_resnet18": _tv("resnet18", 32),
    "tv_mobilenet_v3_small": _tv("mobilenet_v3_small", 32),
    "tv_vit_small": _tv_vit,
    "timm_convnext_atto": _timm("convnext_atto", 32, depths=(1, 1, 1, 1)),
    "timm_vit_dynamic": _timm("vit_tiny_patch16_224", 32, img_size=32, depth=2,
                              dynamic_img_size=True),
    "timm_swin": _timm("swin_tiny_patch4_window7_224", 64, img_size=64, window_size=4,
                       depths=(1, 1, 1, 1)),
    "timm_efficientvit": _timm("efficientvit_b0", 64),
}
SETTINGS = ("resize", "batch", "target", "channels_last", "float64")


def names() -> list[str]:
    """Every API case name."""
    return [f"{m}/{s}" for m in MODELS for s in SETTINGS]


def _close(a: Tensor, b: Tensor, what: str, tol: float = _TOL) -> None:
    scale = float(b.abs().max()) or 1.0
    gap = float((a - b).abs().max()) / scale
    if a.shape != b.shape or not gap <= tol:
        raise AssertionError(f"{what}: differ by {gap:.1e} of the largest value "
                             f"(shapes {tuple(a.shape)} / {tuple(b.shape)})")


def _fresh(model: nn.Module, x: Tensor, target: object = 1) -> Tensor:
    import lumos

    return lumos.LRP(model).attribute(x, target=target)  # type: ignore[arg-type]


def _resize(model: nn.Module, side: int) -> None:
    import lumos

    other = _x(side * 2)
    try:
        with torch.no_grad():
            model(other)
    except Exception as err:
        raise Skip(f"the model does not run at {side * 2} px") from err
    lrp = lumos.LRP(model)
    first = lrp.attribute(_x(side), target=1)
    second = lrp.attribute(other, target=1)
    third = lrp.attribute(_x(side, batch=3), target=1)
    _close(second, _fresh(model, other), "second size vs a fresh attributor")
    _close(third[:2], first, "back to the first size (batch 3) vs the first call")


def _batch(model: nn.Module, side: int) -> None:
    import lumos

    model, x = _double(model), _x(side, torch.float64, batch=5)   # exact: no float32 noise
    lrp = lumos.LRP(model)
    whole = lrp.attribute(x, target=[0, 1, 2, 3, 4])
    one = torch.cat([lrp.attribute(x[i:i + 1], target=i) for i in range(5)])
    _close(whole, one, "batch 5 vs the samples one by one (batch 1)")


def _target(model: nn.Module, side: int) -> None:
    import lumos

    model, x = _double(model), _x(side, torch.float64, batch=3)
    lrp = lumos.LRP(model)
    by_int = lrp.attribute(x, target=2)
    _close(lrp.attribute(x, target=[2, 2, 2]), by_int, "target list vs int")
    _close(lrp.attribute(x, target=torch.tensor([2, 2, 2])), by_int, "target tensor vs int")
    _close(lrp.attribute(x, target=torch.tensor(2)), by_int, "target 0-d tensor vs int")


def _double(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).double()


def _channels_last(model: nn.Module, side: int) -> None:
    model, x = _double(model), _x(side, torch.float64)   # exact: no float32 noise
    plain = _fresh(model, x)
    _close(_fresh(model, x.contiguous(memory_format=torch.channels_last)), plain,
           "channels-last input vs contiguous")
    import copy

    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    _close(_fresh(last, x.contiguous(memory_format=torch.channels_last)), plain,
           "channels-last model and input vs contiguous")


def _float64(model: nn.Module, side: int) -> None:
    import copy

    from lrp.conservation import assert_conserves, calibrate

    x = _x(side)
    plain = _fresh(model, x)
    double = copy.deepcopy(model).double()
    _close(_fresh(double, x.double()).float(), plain, "float64 model vs float32", 1e-2)
    try:
        _fresh(model, x.double())
    except LRPUnsupportedError:   # one clear lumos error is the right answer (torch's own)
        pass
    except Exception as err:
        raise AssertionError(f"float64 input on a float32 model: {_first_line(err)}") from err
    assert_conserves(calibrate(double, side), x.double(), "float64")


_CHECKS = {"resize": _resize, "batch": _batch, "target": _target,
           "channels_last": _channels_last, "float64": _float64}


def run(case: str) -> tuple[str, str]:
    """Build and check one API case."""
    from lrp.conservation import calibrate

    name, setting = case.split("/")
    torch.manual_seed(0)
    try:
        model, side = MODELS[name]()
        calibrate(model.eval(), side, dtype=torch.float32, zero_biases=False)
    except Exception as err:
        raise Skip(f"does not build/run: {_first_line(err)}") from err
    return _guarded(model, "api", lambda: _CHECKS[setting](model, side)) or ("pass", "")

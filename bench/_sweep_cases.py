"""The cases of ``bench/model_sweep.py``: timm architectures, Hugging Face settings, lumos's API.

:func:`case_names` lists a family's cases; :func:`run_case` builds one and checks it, returning
``(verdict, detail)``: ``pass``, ``skip`` (the model does not build or run by itself), or the
first failing check (``explain``, ``untouched``, ``conserve``, ``api``) with the error's first
line.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

_CACHE = Path(__file__).resolve().parents[1] / "build" / "model_sweep_timm.json"
#: Name fragments of large variants; a module's names are ranked by these before counting.
_LARGE = ("huge", "giant", "gigantic", "large", "xlarge", "_xl", "big", "base", "medium",
          "_384", "_448", "_512", "so400m", "_h14", "_l16", "_g14", "_b16", "_m", "_l", "_b")
_SMALL = ("atto", "femto", "pico", "nano", "zepto", "xxxs", "xxs", "xxsmall", "tiny", "xs",
          "xsmall", "mini", "small", "s0", "t0", "b0", "_s", "_t", "18", "10", "26")


class Skip(Exception):
    """The model does not build or run by itself: nothing of lumos is tested."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


# ---- timm --------------------------------------------------------------------------------------
def _rank(name: str) -> int:
    small = next((i for i, t in enumerate(_SMALL) if t in name), len(_SMALL))
    large = sum(t in name for t in _LARGE)
    return 100 * large + small


def _param_count(name: str) -> int | None:
    import timm

    try:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, num_classes=10)
    except Exception:
        return None
    return sum(p.numel() for p in model.parameters())


def timm_selection(per_module: int) -> list[str]:
    """The ``per_module`` smallest models (parameters on the meta device) of each timm module,
    among the 6 best ranked by name; cached in ``build/`` per timm version."""
    import timm

    cache: dict[str, Any] = json.loads(_CACHE.read_text()) if _CACHE.exists() else {}
    if cache.get("timm") != timm.__version__:
        cache = {"timm": timm.__version__, "counts": {}}
    counts: dict[str, dict[str, int | None]] = cache["counts"]
    chosen: list[str] = []
    for module in timm.list_modules():
        if module not in counts:
            names = sorted(timm.list_models(module=module), key=lambda n: (_rank(n), len(n)))
            counts[module] = {n: _param_count(n) for n in names[:6]}
            _CACHE.parent.mkdir(exist_ok=True)
            tmp = _CACHE.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache, indent=0))
            tmp.replace(_CACHE)
        sized = sorted((c, n) for n, c in counts[module].items() if c is not None)
        chosen += [n for _, n in sized[:per_module]]
    return chosen


def _small_kwargs(name: str) -> list[dict[str, Any]]:
    """Keyword sets that make ``name`` small, most reduced first (then none)."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=10)
    params = inspect.signature(type(model).__init__).parameters
    fewer: dict[str, Any] = {}
    for key in ("depths", "layers", "depth"):
        default = params[key].default if key in params else None
        if isinstance(default, (tuple, list)) and all(isinstance(d, int) for d in default):
            fewer[key] = (1,) * len(default)
        elif isinstance(default, int) and key == "depth":
            fewer[key] = 2
    sized = {"img_size": 64} if "img_size" in params else {}
    options = [{**sized, **fewer}, sized, fewer, {}]
    return [o for i, o in enumerate(options) if o not in options[:i]]


def build_timm(name: str) -> tuple[nn.Module, int]:
    """``(model, side)``: ``name`` small, random, eval, running on a ``side``-px input."""
    import timm

    default = timm.get_pretrained_cfg_value(name, "input_size") or (3, 224, 224)
    last: BaseException | None = None
    for kwargs in _small_kwargs(name):
        for side in (64, 32, int(default[-1])):
            torch.manual_seed(0)
            try:
                model = timm.create_model(name, pretrained=False, num_classes=10,
                                          **kwargs).eval()
                with torch.no_grad():
                    model(torch.randn(2, 3, side, side))
                return model, side
            except Exception as err:
                last = err
    raise Skip(f"does not build/run: {_first_line(last)}" if last else "no size")


# ---- checks ------------------------------------------------------------------------------------
def _x(side: int | tuple[int, int], dtype: torch.dtype = torch.float32, batch: int = 2,
       channels: int = 3) -> Tensor:
    h, w = (side, side) if isinstance(side, int) else side
    return torch.randn(batch, channels, h, w, generator=torch.Generator().manual_seed(1),
                       dtype=dtype)


def _guarded(model: nn.Module, kind: str, call: Callable[[], None]) -> tuple[str, str] | None:
    """Run ``call``; the first failure as ``(kind, line)``, ``untouched`` if the model changed."""
    from helpers import assert_same_state, snapshot

    before = snapshot(model)
    failed: tuple[str, str] | None = None
    try:
        call()
    except Skip:
        raise
    except Exception as err:
        failed = (kind, _first_line(err))
    try:
        assert_same_state(before, snapshot(model))
    except AssertionError as err:
        return "untouched", _first_line(err)
    return failed


def check_model(model: nn.Module, xs: Tensor | list[Tensor], name: str, side: int,
                channels: int = 3) -> tuple[str, str]:
    """The three checks of the sweep on one model and each input of ``xs`` (float32 inputs;
    explained as given with calibrated BatchNorm statistics, then conserved in float64)."""
    from lrp.conservation import assert_conserves, assert_explains, calibrate

    xs = [xs] if isinstance(xs, Tensor) else xs
    try:
        calibrate(model, side, channels=channels, dtype=torch.float32, zero_biases=False)
    except Exception as err:
        raise Skip(f"calibration: {_first_line(err)}") from err
    for x in xs:
        failed = _guarded(model, "explain", lambda x=x: assert_explains(model, x, name))
        if failed:
            return _float32_noise(model, x, failed)
    model = calibrate(model, side, channels=channels)
    for x in xs:
        failed = _guarded(model, "conserve",
                          lambda x=x: assert_conserves(model, x.double(), name))
        if failed:
            return _stabiliser(model, x.double(), failed)
    return "pass", ""


def _float32_noise(model: nn.Module, x: Tensor, failed: tuple[str, str]) -> tuple[str, str]:
    """``f32-noise`` when the prepared model's float32 mismatch is the model's own: its float32
    output differs from its float64 one by more than the capture allowed (the bound the error
    names: 1e-3 to 5e-3 in float32, by the model's growth)."""
    import copy
    import re

    if failed[0] != "explain" or "does not reproduce" not in failed[1]:
        return failed
    with torch.no_grad():
        want = copy.deepcopy(model).double()(x.double())
        got = model(x)
    from lumos.lrp.capture.outputs import logits_of

    want, got = logits_of(want), logits_of(got)
    own = float((got.double() - want).abs().max() / want.abs().max())
    allowed = re.search(r"\(allowed ([0-9.e+-]+)\)", failed[1])
    if own <= (float(allowed.group(1)) if allowed else 1e-3):
        return failed
    return "f32-noise", f"the model's own float32 output differs from float64 by {own:.1e}"


def _stabiliser(model: nn.Module, x: Tensor, failed: tuple[str, str]) -> tuple[str, str]:
    """``eps-limited`` when the conservation gap is the epsilon stabiliser's (it shrinks a
    thousandfold with epsilon 1e-12: no branch is lost), else the failure as it was."""
    import lumos
    from lrp.conservation import TOLERANCE

    if failed[0] != "conserve" or "differ from the output" not in failed[1]:
        return failed
    with torch.no_grad():
        from lumos.lrp.capture.outputs import logits_of

        target = logits_of(model(x)).abs().argmax(dim=1)
    layers = lumos.LRP(model, lumos.lrp.composites.CPLRP(epsilon=1e-12)).explain(
        x, target=target).layers
    sinks = sum((v for k, v in layers.items() if k.endswith("(sink)")),
                torch.zeros_like(layers["output"]))
    gap = float(((layers["input"] + sinks - layers["output"]).abs()
                 / layers["output"].abs()).max())
    if gap > TOLERANCE:
        return failed
    return "eps-limited", f"{failed[1].split(' by ')[-1].split(' ')[0]} at epsilon 1e-9, " \
        f"{gap:.1e} at 1e-12"


def run_case(family: str, name: str) -> tuple[str, str]:
    """Build and check one case (in the worker process)."""
    import _sweep_api
    import _sweep_hf

    try:
        if family == "timm":
            model, side = build_timm(name)
            return check_model(model, _x(side), name, side)
        if family == "hf":
            return _sweep_hf.run(name)
        return _sweep_api.run(name)
    except Skip as err:
        return "skip", str(err)
    except Exception as err:   # a failure of the sweep's own setup
        return "error", _first_line(err)


def case_names(family: str, per_module: int) -> list[str]:
    """Every case of ``family``."""
    import _sweep_api
    import _sweep_hf

    if family == "timm":
        return timm_selection(per_module)
    if family == "hf":
        return _sweep_hf.names()
    return _sweep_api.names()

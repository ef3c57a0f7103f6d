"""One batch of the store's work: LRP's own forward gives the prediction, and a CUDA
out-of-memory error halves the batch without changing a number."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import lumos
from lumos.errors import UserError
from lumos.lrp import composites
from lumos.store.compute import PREDICT, AttributeOnly, _explain_batch


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5)).eval()


class _Cramped:
    """An explainer that raises CUDA's out-of-memory error for batches over ``most``."""

    def __init__(self, inner: Any, most: int) -> None:
        self.inner, self.most, self.sizes = inner, most, []  # type: list[int]

    def __call__(self, x: Tensor, target: Any) -> Any:
        self.sizes.append(len(x))
        if len(x) > self.most:
            raise torch.cuda.OutOfMemoryError("pretend")
        return self.inner(x, target)


class _CrampedLRP(_Cramped, AttributeOnly):
    pass


def _seconds() -> dict[str, float]:
    return {PREDICT: 0.0, "lrp:epsilon-plus": 0.0, "ig": 0.0}


@pytest.mark.parametrize("target", ["predicted", "label", 3])
def test_prediction_comes_from_lrp_forward(target: str | int) -> None:
    model = _model()
    x = torch.randn(7, 1, 8, 8)
    y = torch.arange(7) % 5
    lrp = AttributeOnly("lrp:epsilon-plus", model, torch.tensor(-3.0), torch.tensor(3.0))
    seconds = _seconds()
    logits, out = _explain_batch(model, x, y, SimpleNamespace(target=target),  # type: ignore[arg-type]
                                 {"lrp:epsilon-plus": lrp}, 5, seconds)
    with torch.no_grad():
        expect = model(x)
    torch.testing.assert_close(logits, expect, atol=1e-6, rtol=1e-5)
    want = expect.argmax(1) if target == "predicted" else y if target == "label" else \
        torch.full((7,), 3)
    exp = out["lrp:epsilon-plus"]
    assert torch.equal(exp.target, want)
    assert torch.equal(exp.attribution, lumos.LRP(model, composites.EpsilonPlus()).attribute(
        x, target=want))
    assert seconds[PREDICT] == 0.0  # no separate forward pass


def test_out_of_memory_halves_the_batch_and_keeps_every_number() -> None:
    model = _model()
    x, y = torch.randn(7, 1, 8, 8), torch.zeros(7, dtype=torch.long)
    plain = AttributeOnly("lrp:epsilon-plus", model, torch.tensor(-3.0), torch.tensor(3.0))
    want_logits, want = _explain_batch(model, x, y, SimpleNamespace(target="predicted"),  # type: ignore[arg-type]
                                       {"lrp:epsilon-plus": plain}, 5, _seconds())
    cramped = _CrampedLRP.__new__(_CrampedLRP)
    _Cramped.__init__(cramped, plain, most=2)
    logits, got = _explain_batch(model, x, y, SimpleNamespace(target="predicted"),  # type: ignore[arg-type]
                                 {"lrp:epsilon-plus": cramped}, 5, _seconds())
    assert cramped.sizes == [7, 3, 1, 2, 4, 2, 2]
    torch.testing.assert_close(logits, want_logits)
    torch.testing.assert_close(got["lrp:epsilon-plus"].attribution,
                               want["lrp:epsilon-plus"].attribution)
    assert torch.equal(got["lrp:epsilon-plus"].target, want["lrp:epsilon-plus"].target)


def test_wrong_output_width_is_one_clear_error() -> None:
    model = _model()
    lrp = AttributeOnly("lrp:epsilon-plus", model, torch.tensor(-3.0), torch.tensor(3.0))
    with pytest.raises(UserError, match=r"shape \(2, 5\), expected \(batch, 10\)"):
        _explain_batch(model, torch.randn(2, 1, 8, 8), torch.zeros(2, dtype=torch.long),
                       SimpleNamespace(target="predicted"),  # type: ignore[arg-type]
                       {"lrp:epsilon-plus": lrp}, 10, _seconds())


def test_prefetched_keeps_order_raises_where_the_source_fails_and_stops_early() -> None:
    from lumos.store.compute import Prefetched

    assert list(Prefetched(iter(range(10)))) == list(range(10))

    def failing() -> Any:
        yield 1
        yield 2
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for item in Prefetched(failing()):
            seen.append(item)
    assert seen == [1, 2]
    endless = Prefetched(iter(range(10**9)), depth=2)
    assert next(iter(endless)) == 0
    endless.close()  # returns although the source never ends
    assert not endless._thread.is_alive()


def test_io_overlaps_only_with_a_core_to_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    from lumos.store.compute import overlap_io

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not overlap_io(torch.device("cpu"), cpus=2)  # torch's threads take every core
    assert overlap_io(torch.device("cpu"), cpus=3)
    assert overlap_io(torch.device("cuda"), cpus=1)  # the CPU only feeds the GPU


@pytest.mark.parametrize("background", [True, False])
def test_shard_writer_writes_and_reraises_in_both_modes(tmp_path: Any, background: bool) -> None:
    import h5py
    import numpy as np

    from lumos.store.compute import ShardWriter

    writer = ShardWriter(background=background)
    groups = {"input": {"data": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    writer.submit(tmp_path / "0-2.h5", groups, {"start": 0, "stop": 2})
    writer.close()
    with h5py.File(tmp_path / "0-2.h5", "r") as f:
        assert f["input/data"][()].tolist() == [[0, 1, 2], [3, 4, 5]]
        assert int(f.attrs["stop"]) == 2
    writer = ShardWriter(background=background)
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):  # a file where the shard folder should be
        writer.submit(tmp_path / "file" / "0-2.h5", groups, {"start": 0, "stop": 2})
        writer.close()

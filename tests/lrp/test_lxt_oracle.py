"""lumos ``CPLRP(epsilon=1e-6)`` equals LXT 2.1's efficient CP-LRP on torchvision ViT-B/16 and
on Hugging Face's ``ViTForImageClassification`` as given.

The references run in subprocesses (``lxt_vit.py``, ``lxt_hf_vit.py``): LXT patches
torchvision's, transformers' and Zennit's classes globally, which must not leak into this
process (nor into lumos). Float64, random weights and biases; the heatmaps agree to 1e-6
relative.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lumos
from helpers import untouched
from lumos.lrp import composites

pytest.importorskip("lxt.efficient")
pytest.importorskip("zennit")

HERE = Path(__file__).parent


def _reference(script: str, tmp_path: Path) -> torch.Tensor:
    """The relevance ``script`` (next to this file) computes with LXT in its own process."""
    out = tmp_path / "lxt.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    subprocess.run([sys.executable, str(HERE / script), str(out)], check=True, env=env,
                   timeout=600)
    reference: torch.Tensor = torch.load(out)
    assert reference.abs().max() > 0
    return reference


@pytest.mark.slow
def test_cplrp_equals_lxt_on_hugging_face_vit(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from lrp import lxt_hf_vit

    reference = _reference("lxt_hf_vit.py", tmp_path)
    model, x = lxt_hf_vit.build(), lxt_hf_vit.inputs()
    with untouched(model):
        relevance = lumos.LRP(model, composites.CPLRP(epsilon=1e-6)).attribute(
            x, target=lxt_hf_vit.TARGET)
    error = (relevance - reference).abs().max() / reference.abs().max()
    assert error <= 1e-6, f"max relative difference {error:.2e}"


@pytest.mark.slow
def test_cplrp_equals_lxt_on_vit_b_16(tmp_path: Path) -> None:
    from lrp import lxt_vit

    reference = _reference("lxt_vit.py", tmp_path)
    model, x = lxt_vit.build(), lxt_vit.inputs()
    with untouched(model):
        relevance = lumos.LRP(model, composites.CPLRP(epsilon=1e-6)).attribute(
            x, target=lxt_vit.TARGET)
    error = (relevance - reference).abs().max() / reference.abs().max()
    assert error <= 1e-6, f"max relative difference {error:.2e}"
    assert abs(relevance.sum() - reference.sum()) <= 1e-6 * reference.abs().sum()

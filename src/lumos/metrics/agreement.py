"""Do samples with alike explanations get the same prediction? (Dasgupta, Frost & Moshkovitz,
ICML 2022, "Framework for evaluating faithfulness of local explanations")

Both metrics compare every sample with the *other samples of the same call*: pass a batch that
is representative of the data (the values of a sample depend on its companions by design).

- :func:`sufficiency`: among the other samples whose explanation lies within ``threshold`` of
  this one's, the share predicted as the same class.
- :func:`consistency`: among the other samples with the *same* discretised explanation (by
  default the set of the ``n`` most relevant features with their signs), the share predicted as
  the same class.

Higher is better; NaN where no other sample qualifies (the share is undefined there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.metrics._common import check_choice, check_positive_int, predictions
from lumos.metrics._prep import check_positive, relevance
from lumos.metrics._sort import first_ranked

Distance = Literal["seuclidean", "euclidean", "cityblock", "cosine"]


def pairwise_distance(a: Tensor, distance: Distance = "seuclidean") -> Tensor:
    """``(N, N)`` distances between the rows of ``a`` (float64).

    ``"seuclidean"`` scales each feature by its variance over the rows (sample variance, as
    scipy); features that do not vary carry no information and are left out (scipy divides by
    their zero variance and returns NaN).
    """
    check_choice("distance", distance, ("seuclidean", "euclidean", "cityblock", "cosine"))
    a = a.double()
    if distance == "seuclidean":
        var = a.var(0, unbiased=True) if a.shape[0] > 1 else torch.zeros_like(a[0])
        keep = var > 0
        a = a[:, keep] / var[keep].sqrt()
        distance = "euclidean"
    if distance == "euclidean":
        return torch.cdist(a, a)
    if distance == "cityblock":
        return torch.cdist(a, a, p=1)
    unit = a / a.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return (1 - unit @ unit.T).clamp_min(0)


def _share(same_class: Tensor, related: Tensor) -> Tensor:
    related = related & ~torch.eye(related.shape[0], dtype=torch.bool, device=related.device)
    count = related.sum(1)
    agree = (related & same_class).sum(1).double()
    return torch.where(count > 0, agree / count.clamp_min(1), torch.nan)


def sufficiency(model: nn.Module, inputs: Tensor, attribution: Tensor, *,
                threshold: float = 0.6, distance: Distance = "seuclidean",
                absolute: bool = True, normalise: bool = True, batch_size: int = 256) -> Tensor:
    """Share of the samples with a nearby explanation that get the same predicted class.

    Distances between the prepared maps (``|relevance|``, normalised per sample by default) are
    divided by the largest distance of the batch; "nearby" is at most ``threshold``.

    Notes
    -----
    Quantus 0.6's default ``"seuclidean"`` divides by features' variance across the batch; for
    IG and LRP maps many features (a digit's background) have zero variance, every distance is
    NaN and every sample scores 0. lumos leaves such features out.
    """
    x = check_input(inputs)
    a = relevance(x, attribution, absolute=absolute, normalise=normalise)
    check_positive("threshold", threshold)
    d = pairwise_distance(a, distance)
    peak = d.max()
    d = d / peak if peak > 0 else d
    pred = predictions(model, x, batch_size).cpu()
    return _share(pred[None, :] == pred[:, None], d <= threshold).to(x.device)


def top_n_sign(a: Tensor, n: int = 5) -> list[object]:
    """Discretise maps ``(N, P)``: the ``n`` most relevant features (sorted) and their signs."""
    n = min(n, a.shape[1])
    chosen = first_ranked(a, n)  # the first n of a stable descending sort, in feature order
    top = chosen.nonzero()[:, 1].reshape(a.shape[0], n)
    signs = a.gather(1, top).sign().long()
    return [(tuple(t), tuple(s)) for t, s in zip(top.tolist(), signs.tolist(), strict=True)]


def consistency(model: nn.Module, inputs: Tensor, attribution: Tensor, *, n: int = 5,
                discretise: Callable[[Tensor], list[object]] | None = None,
                absolute: bool = True, normalise: bool = True, batch_size: int = 256) -> Tensor:
    """Share of the samples with the same discretised explanation that share the prediction.

    ``discretise`` maps the prepared maps ``(N, P)`` to one hashable label per sample (default
    :func:`top_n_sign` with ``n``).

    Notes
    -----
    Quantus 0.6's ``top_n_sign`` takes the signs of the *first* ``n`` features in memory order
    (an image's top-left corner), not of the ``n`` most relevant, so almost every MNIST map gets
    the same label; and it scores 0 where lumos says NaN (no other sample has that label).
    """
    x = check_input(inputs)
    a = relevance(x, attribution, absolute=absolute, normalise=normalise)
    labels = (discretise or (lambda m: top_n_sign(m, check_positive_int("n", n))))(a)
    if len(labels) != x.shape[0]:
        raise ValueError(f"discretise returned {len(labels)} labels for {x.shape[0]} samples")
    ids: dict[object, int] = {}
    code = torch.tensor([ids.setdefault(label, len(ids)) for label in labels])
    same = code[None, :] == code[:, None]
    # only a sample that shares its label with another one has a score: the model predicts
    # those alone (the others' -1 is never compared)
    shared = same.sum(1) > 1
    pred = torch.full((x.shape[0],), -1, dtype=torch.long)
    if bool(shared.any()):
        pred[shared] = predictions(model, x[shared.to(x.device)], batch_size).cpu()
    return _share(pred[None, :] == pred[:, None], same).to(x.device)

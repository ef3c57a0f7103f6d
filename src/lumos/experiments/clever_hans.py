"""``lumos demo --clever-hans``: plant a shortcut, then find it with SpRAy.

The mnist-5k CNN is trained on digits where a fraction of one class (and no other) carries a
small square mark, so the model can recognise those digits by the mark instead of their shape
(a "Clever Hans", like the source tag on PASCAL VOC's horse photos in Lapuschkin et al. 2019).
That class's digits are written as an ImageFolder (half of them marked, the training marks
plus fresh marks on held-out digits), explained with LRP and IG through the dataset store
(``folder:DIR``), and SpRAy clusters the heatmaps: the clustering the eigengap chooses should
put the marked digits in a cluster of their own, measured by the adjusted Rand index against
which digits carry the mark. Each marked image gets its mark as a localisation mask
(``<name>.mask.png``), so the localisation metrics say which method puts its relevance on the
shortcut (:func:`mark_localisation`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lumos.atomic import write_bytes_atomic


@dataclass(frozen=True)
class Mark:
    """A filled square of ``size`` pixels with its top-left corner at ``(top, left)``."""

    top: int = 22
    left: int = 2
    size: int = 4
    value: float = 1.0

    def apply(self, x: Tensor) -> Tensor:
        """A copy of ``(N, C, H, W)`` images with the mark drawn in."""
        out = x.clone()
        out[..., self.top:self.top + self.size, self.left:self.left + self.size] = self.value
        return out

    def mask(self, height: int, width: int) -> Tensor:
        """``(H, W)`` bool: where the mark is."""
        out = torch.zeros(height, width, dtype=torch.bool)
        out[self.top:self.top + self.size, self.left:self.left + self.size] = True
        return out


@dataclass
class CleverHansSettings:
    """What decides the demo's numbers (written into ``clever-hans.json``)."""

    digit: int = 8
    fraction: float = 0.5  # of the digit's training images that carry the mark
    mark: Mark = field(default_factory=Mark)
    epochs: int = 6  # 0: the mnist-5k recipe's (15); 6 already separate the marks
    others: int = 10  # held-out digits of each other class in the folder (labels stay real)
    methods: tuple[str, ...] = ("lrp:epsilon-plus", "ig")
    ig_tolerance: float = 0.02
    ig_max_steps: int = 128
    concept_layer: str | None = "features.4"  # the last convolution; None: no concepts
    concept_top: int = 16  # RelMax references per concept


def marked_training_set(s: CleverHansSettings, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """mnist-5k's training digits with the mark on ``s.fraction`` of class ``s.digit``; returns
    images, labels and which images are marked."""
    from lumos.data.samples import mnist5k

    x, y = mnist5k("train")
    marked = _pick(y == s.digit, s.fraction, seed)
    x[marked] = s.mark.apply(x[marked])
    return x, y, marked


def _pick(candidates: Tensor, fraction: float, seed: int) -> Tensor:
    """A random ``fraction`` of the ``True`` entries of ``candidates``, as a mask."""
    where = candidates.nonzero().flatten()
    gen = torch.Generator().manual_seed(seed)
    chosen = where[torch.randperm(len(where), generator=gen)[:round(fraction * len(where))]]
    mask = torch.zeros_like(candidates)
    mask[chosen] = True
    return mask


def train(x: Tensor, y: Tensor, s: CleverHansSettings, seed: int, progress: bool,
          device: str | torch.device = "cpu") -> nn.Module:
    """The mnist-5k CNN trained with the zoo's recipe on ``(x, y)``; eval mode."""
    from lumos.models.cnn import MnistCNN
    from lumos.models.zoo import MNIST5K_RECIPE
    from lumos.train import fit, random_shift

    r = MNIST5K_RECIPE
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MnistCNN(**r["architecture"]["kwargs"])
    fit(model, (x, y), None, epochs=s.epochs or r["epochs"], batch_size=r["batch_size"],
        lr=r["lr"], weight_decay=r["weight_decay"], seed=seed, augment=random_shift(r["shift"]),
        progress=progress, device=device)
    return model.eval()


def save_model(model: nn.Module, path: Path, s: CleverHansSettings) -> Path:
    """A lumos checkpoint of the digit CNN (the store loads models from checkpoints)."""
    from lumos.models.checkpoint import save_checkpoint
    from lumos.models.zoo import MNIST5K_RECIPE

    return save_checkpoint(path, model.cpu(), architecture=MNIST5K_RECIPE["architecture"],
                           dataset=f"mnist-5k, {s.fraction:.0%} of digit {s.digit} marked",
                           classes=[str(d) for d in range(10)],
                           normalization={"mean": [0.0], "std": [1.0]},
                           extra={"clever_hans": _plain(asdict(s))})


def write_folder(root: Path, images: Tensor, labels: Tensor, marked: Tensor,
                 mark: Mark | None = None) -> Path:
    """Write ``images`` as an ImageFolder ``root/<label>/<n>-marked|plain.png`` (grayscale);
    with ``mark``, each marked image gets its mask ``<n>-marked.mask.png``."""
    from PIL import Image

    counts: dict[int, int] = {}
    for img, label, m in zip(images, labels.tolist(), marked.tolist(), strict=True):
        n = counts.get(label, 0)
        counts[label] = n + 1
        pixels = np.round(img[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
        path = root / str(label) / f"{n:05d}-{'marked' if m else 'plain'}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(path)
        if m and mark is not None:
            where = mark.mask(*img.shape[1:]).numpy().astype(np.uint8) * 255
            Image.fromarray(where, mode="L").save(path.with_name(path.stem + ".mask.png"))
    return root


def explained_digits(s: CleverHansSettings, x_train: Tensor, y_train: Tensor,
                     marked_train: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The folder's images: every digit ``s.digit`` (training ones as trained, held-out ones
    marked at the same rate) and ``s.others`` held-out digits of each other class."""
    from lumos.data.samples import mnist5k

    x_test, y_test = mnist5k("test")
    fresh = _pick(y_test == s.digit, s.fraction, seed + 1)
    x_test = torch.where(fresh[:, None, None, None], s.mark.apply(x_test), x_test)
    keep = y_test == s.digit
    for d in range(10):
        if d != s.digit:
            keep[(y_test == d).nonzero().flatten()[:s.others]] = True
    mine = y_train == s.digit
    return (torch.cat([x_train[mine], x_test[keep]]), torch.cat([y_train[mine], y_test[keep]]),
            torch.cat([marked_train[mine], fresh[keep]]))


def truth(folder: Path, class_name: str | None) -> np.ndarray:
    """Which samples of class ``class_name`` (None: of every class) in ``folder:DIR`` order
    carry the mark."""
    from lumos.data.folder import scan

    classes, samples = scan(folder)
    label = None if class_name is None else classes.index(class_name)
    return np.array([p.stem.endswith("marked") for p, y in samples
                     if label is None or y == label])


def spray_folder(checkpoint: Path, folder: Path, store: Path, class_name: str,
                 marked: np.ndarray, methods: tuple[str, ...], ig: dict[str, Any],
                 quiet: bool = False, device: str | torch.device | None = None,
                 concept_layer: str | None = None, concept_top: int = 16,
                 ) -> dict[str, Any]:
    """The pipeline: ``folder:DIR`` explained into a store, SpRAy on one class per method,
    the adjusted Rand index of each eigengap clustering against ``marked`` (which of the
    class's images, in the folder's sorted order, carry the mark), a static page; with
    ``concept_layer``, also the concept of that layer that carries the mark
    (:func:`marked_concept`)."""
    from sklearn.metrics import adjusted_rand_score

    from lumos.analysis import analyse
    from lumos.explorer.static import write_page
    from lumos.store.pipeline import explain_dataset

    explain_dataset(str(checkpoint), f"folder:{folder}", list(methods), store, ig=ig,
                    device=device, progress=not quiet, overwrite=True,
                    concepts=[concept_layer] if concept_layer else ())
    from lumos.store import open_store

    with open_store(store) as st:
        label = st.classes.index(class_name)
    found: dict[str, Any] = {}
    for key in methods:
        _, (a,) = analyse(store, key, [label], compare=list(methods), progress=not quiet)
        chosen = a.result.chosen
        sizes = np.bincount(chosen, minlength=a.result.eigengap_k)
        share = [float(marked[chosen == c].mean()) for c in range(a.result.eigengap_k)]
        hans = int(np.argmax(share))
        found[key] = {
            "ari": float(adjusted_rand_score(marked, chosen)), "k": a.result.eigengap_k,
            "eigenvalues": [round(float(v), 4) for v in a.result.smallest_first[:8]],
            "cluster_sizes": sizes.tolist(), "marked_share": [round(v, 3) for v in share],
            "marked_cluster": hans, "summary": a.summary(),
            "border_fraction": {str(c): round(float(a.border_fraction[chosen == c].mean()), 3)
                                for c in range(a.result.eigengap_k)}}
    page = write_page(store, store / "spray.html", list(methods))
    result = {"methods": found, "page": str(page), "samples": len(marked),
              "marked": int(marked.sum())}
    if concept_layer:
        key = next(m for m in methods if m.startswith("lrp:"))
        with open_store(store) as st:
            got = st.arrays(key, ("index", "label"))
        flags = np.zeros(int(got["index"].max()) + 1, dtype=bool)  # by dataset position
        flags[np.sort(got["index"][got["label"] == label])] = marked
        result["concept"] = marked_concept(store, key, concept_layer, flags, concept_top,
                                           quiet, device)
    return result


def marked_concept(store: Path, key: str, layer: str, marked: np.ndarray, top: int,
                   quiet: bool = True, device: str | torch.device | None = None
                   ) -> dict[str, Any]:
    """The concept of ``layer`` with the largest mean relevance on the marked samples
    (``marked``: one flag per dataset position), and the share of marked samples among its
    ``top`` RelMax references (``lumos concepts --normalize none`` run on the store).

    The references are ranked by the concept's relevance itself, not by its share of each
    sample's relevance (zennit-crp's default, ``marked_in_top_share`` for comparison): the
    question is in which samples the decision leans most on the concept."""
    from lumos.crp.analysis import analyse
    from lumos.store import open_store

    analysis = analyse(store, layer, method=key, top=top, normalize="none",
                       sample_heatmaps=3, device=device or "cpu", progress=not quiet)
    with open_store(store) as st:
        relevance = st.concepts(key, layer)["relevance"]
        on_rows = marked[st.arrays(key, ("index",))["index"]]
    on_marked = relevance[on_rows].mean(0)
    concept = int(on_marked.argmax())
    refs = analysis.top(concept)
    share = float(marked[refs].mean()) if refs else 0.0
    normed = relevance[:, concept] / np.maximum(np.abs(relevance).sum(1), 1e-10)
    by_share = on_rows[np.argsort(-normed, kind="stable")[:top]]
    return {"method": key, "layer": layer, "concept": concept, "top": refs,
            "marked_in_top": round(share, 4),
            "marked_in_top_share": round(float(by_share.mean()), 4),
            "mean_relevance_marked": round(float(on_marked[concept]), 5),
            "mean_relevance_unmarked": round(float(relevance[~on_rows].mean(0)[concept]), 5),
            "rank_on_unmarked": int((relevance[~on_rows].mean(0) > relevance[~on_rows].mean(0)[
                concept]).sum())}


def run_clever_hans(out: Path, s: CleverHansSettings | None = None, seed: int = 0,
                    quiet: bool = False, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train with the planted mark, explain, run SpRAy; writes ``out/clever-hans.json`` and
    ``out/store/spray.html`` and returns the results."""
    import time

    s = s or CleverHansSettings()
    begin = time.perf_counter()
    say = (lambda m: None) if quiet else (lambda m: print(m, flush=True))
    x, y, marked = marked_training_set(s, seed)
    say(f"training the mnist-5k CNN; {int(marked.sum())} of {int((y == s.digit).sum())} "
        f"training digits {s.digit} carry a {s.mark.size}x{s.mark.size} mark")
    model = train(x, y, s, seed, not quiet, device)
    checkpoint = save_model(model, out / "model.safetensors", s)
    accuracy = _held_out(model, s, device)
    folder = write_folder(out / "digits", *explained_digits(s, x, y, marked, seed), s.mark)
    result = spray_folder(checkpoint, folder, out / "store", str(s.digit),
                          truth(folder, str(s.digit)), s.methods,
                          {"tolerance": s.ig_tolerance, "max_steps": s.ig_max_steps}, quiet,
                          device, s.concept_layer, s.concept_top)
    result["localisation"] = mark_localisation(out / "store", device, quiet)
    result.update({"settings": _plain(asdict(s)), "seed": seed, "accuracy": accuracy,
                   "seconds": round(time.perf_counter() - begin, 1)})
    write_bytes_atomic(json.dumps(result, indent=1).encode(), out / "clever-hans.json")
    return result


def mark_localisation(store: Path, device: str | torch.device = "cpu",
                      quiet: bool = False) -> dict[str, Any]:
    """The localisation family over the store's marked digits (their mask is the mark): per
    method and metric the mean and standard error, and which method puts more relevance on
    the mark (relevance mass accuracy)."""
    from lumos.store.evaluate import evaluate_store

    result = evaluate_store(store, ["localisation"], device=device, progress=not quiet)
    summary = result.summary()
    table = {method: {metric: {"mean": round(cell["mean"], 4), "stderr": round(cell["stderr"], 4)}
                      for metric, cell in row.items()} for method, row in summary.items()}
    marked = sum(1 for v in result.values[result.methods[0]]["relevance_mass_accuracy"]
                 if v == v)
    return {"metrics": table, "better": result.better, "marked_digits": marked,
            "most_on_mark": result.best("relevance_mass_accuracy"), "table": result.table()}


def _held_out(model: nn.Module, s: CleverHansSettings, device: Any) -> dict[str, float]:
    """Accuracy on the clean held-out digits, and on digit ``s.digit`` with and without the
    mark (the mark alone should not be needed for a good model)."""
    from lumos.data.samples import mnist5k
    from lumos.experiments.study import accuracy

    x, y = mnist5k("test")
    x, y = x.to(device), y.to(device)
    mine = y == s.digit
    return {"clean": round(accuracy(model, x, y), 4),
            "digit_plain": round(accuracy(model, x[mine], y[mine]), 4),
            "digit_marked": round(accuracy(model, s.mark.apply(x[mine]), y[mine]), 4),
            "others_marked": round(accuracy(model, s.mark.apply(x[~mine]), y[~mine]), 4)}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))

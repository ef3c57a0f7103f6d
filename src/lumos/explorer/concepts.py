"""The explorer's concept view: what it shows, read from a store's concepts files.

``lumos concepts`` writes ``DIR/concepts-<method>.h5`` (:mod:`lumos.crp.files`); this module
turns them into JSON payloads (a layer's concepts ranked by mean relevance with their
references, one sample's most relevant concepts) and PNGs (a reference cropped to where its
concept is relevant, next to its conditional heatmap cropped alike; a sample's conditional
heatmap). Requests name methods, layers, concepts and samples, never paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lumos.crp import files
from lumos.explorer.data import NotFound, StoreView, _rounded, _thumb

#: The two kinds of references, as the URLs name them.
MODES = {"relmax": "relevance", "actmax": "activation"}


def concept_files(directory: Path, methods: list[str]) -> dict[str, Path]:
    """``{method: DIR/concepts-<method>.h5}`` for the methods that have one."""
    found = {k: files.concepts_file(directory, k) for k in methods}
    return {k: p for k, p in found.items() if p.is_file()}


class ConceptView:
    """Read-only access to the concept analyses of one store (thread-safe through ``view``)."""

    def __init__(self, view: StoreView) -> None:
        self.view = view
        self.paths = concept_files(view.directory, list(view.methods))
        self.layers = {k: files.read_all(p, heatmaps=False) for k, p in self.paths.items()}

    def _layer(self, key: str, layer: str) -> files.ConceptAnalysis:
        found = self.layers.get(key, {}).get(layer)
        if found is None:
            raise NotFound(f"no concept analysis of {layer!r} for method {key!r}")
        return found

    def index(self) -> dict[str, Any]:
        """Methods with their analysed layers."""
        return {"directory": self.view.directory.name, "classes": self.view.names,
                "clusters": bool(self.view.analysed),
                "has_input": (self.view.directory / "input.h5").is_file(),
                "methods": {k: [{"layer": a.layer, "channels": a.channels,
                                 "token_layer": a.token_layer, "settings": a.settings,
                                 "sample_heatmaps": int(a.extra.get("sample_heatmaps", 0))}
                                for a in layers.values()] for k, layers in self.layers.items()}}

    def layer_payload(self, key: str, layer: str) -> dict[str, Any]:
        """A layer's concepts, their mean relevance overall and per class, their references."""
        a = self._layer(key, layer)
        per_class = a.class_relevance
        return {
            "method": key, "layer": layer, "channels": a.channels,
            "mean": _rounded(a.mean_relevance, 6),
            "classes": [_rounded(row, 6) for row in per_class],
            "heatmaps": a.heatmap_concepts.astype(int).tolist(),
            "references": {name: {"index": refs.index.astype(int).tolist(),
                                  "score": [_rounded(s, 5) for s in refs.score]}
                           for name, refs in ((n, a.references[m]) for n, m in MODES.items())},
        }

    def sample_payload(self, key: str, layer: str, sample: int) -> dict[str, Any]:
        """One sample's most relevant concepts of ``layer`` and their shares."""
        a = self._layer(key, layer)
        row = self.view._rows[key].get(sample)
        if row is None:
            raise NotFound(f"method {key!r} has no sample {sample}")
        m = self.view.methods[key]
        return {"sample": sample, "label": int(m.label[row]),
                "prediction": int(m.prediction[row].argmax()) if m.prediction.shape[1] else -1,
                "top": a.sample_top[row].astype(int).tolist(),
                "share": _rounded(a.sample_share[row], 4),
                "heatmaps": int(a.extra.get("sample_heatmaps", 0))}

    def reference_image(self, key: str, layer: str, mode: str, concept: int, k: int,
                        kind: str) -> bytes:
        """PNG of reference ``k`` of ``concept``: its ``input`` or its conditional ``heatmap``,
        both cropped to the reference's box."""
        from lumos.viz.image import heatmap, png_bytes, to_image

        a = self._layer(key, layer)
        if mode not in MODES or kind not in ("input", "heatmap"):
            raise NotFound(f"no {mode}/{kind} image")
        refs = a.references[MODES[mode]]
        if not (0 <= concept < a.channels and 0 <= k < refs.row.shape[1]) \
                or refs.row[concept, k] < 0:
            raise NotFound(f"concept {concept} has no reference {k}")
        top, left, bottom, right = (int(v) for v in refs.box[concept, k])
        if kind == "input":
            image = np.asarray(self.view._input_array(int(refs.index[concept, k])))
            return png_bytes(_thumb(to_image(image[:, top:bottom, left:right])))
        heat = (files.read_heatmap(self.paths[key], layer, (mode,), (concept, k))
                if concept in a.heatmap_concepts else None)  # the others are zeros
        if heat is None:
            raise NotFound(f"no heatmap of concept {concept}'s reference {k}")
        return png_bytes(_thumb(heatmap(heat[top:bottom, left:right])))

    def sample_image(self, key: str, layer: str, sample: int, t: int) -> bytes:
        """PNG of sample ``sample``'s conditional heatmap for its ``t``-th concept."""
        from lumos.viz.image import heatmap, png_bytes

        self._layer(key, layer)
        row = self.view._rows[key].get(sample)
        heat = None if row is None else files.read_heatmap(self.paths[key], layer,
                                                           ("samples",), (row, t))
        if heat is None:
            raise NotFound(f"no heatmap of sample {sample}'s concept {t}")
        return png_bytes(_thumb(heatmap(heat)))

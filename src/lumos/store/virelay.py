"""``lumos export virelay``: ViRelAy projects over a store and its SpRAy analyses.

ViRelAy (https://virelay.readthedocs.io) opens one YAML project file per attribution method,
with a label map, an HDF5 dataset and the attribution and analysis databases. The store's files
follow its database layout, but ViRelAy also needs

- a label map ``[{index, word_net_id, name}]``; ViRelAy names an analysis category by looking its
  group name up among the ``word_net_id`` values, so these are the class indices as text, the
  names of lumos's analysis groups;
- images it can draw: it moves the channel axis last and hands the array to PIL, which cannot
  draw ``(H, W, 1)``, and its colour maps take ``(H, W)`` maps or sum ``(H, W, C>1)`` ones;
  float pixels are mapped to 0-255 by guessing their range from each image's minimum and
  maximum (``[-1, 1]``, ``[0, 1]`` or ``[0, 255]``);
- analysis method names without ``-`` (its REST API turns ``-`` into ``_``).

Written into ``OUT`` (default ``DIR/virelay``)::

    OUT/label-map.json       the class names
    OUT/<stem>.yaml          one project per analysed method
    OUT/input.h5             ``data`` (N, 3, H, W) and ``label``: links into ``DIR/input.h5``
                             (a one-channel input is one source mapped to three channels of an
                             HDF5 virtual dataset); inputs ViRelAy would misread (normalised, or
                             too dark for its range guess) are stored once as uint8 pixels
    OUT/<stem>.h5            ``attribution`` (N, C', H, W), ``label``, ``prediction``: links into
                             ``DIR/<stem>.h5``; a one-channel map becomes channel 0 of three,
                             the others read as 0, so ViRelAy's channel sum is the stored map.
                             ``index`` only when the rows are not the sample indices (ViRelAy
                             scans it element by element for every heatmap it draws)

Every link is relative, so ``DIR`` (with ``OUT`` inside it) can be moved or copied whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lumos.atomic import atomic_file, write_bytes_atomic
from lumos.store import layout
from lumos.store.reader import Store, StoreError, open_store

LABEL_MAP = "label-map.json"
ANALYSIS_METHOD = "spray"
"""The analysis method's name in the projects (ViRelAy's URLs swap ``-`` and ``_``)."""
BLOCK = 4096
HEADER = "# ViRelAy project written by `lumos export virelay`"
"""Samples read at a time when checking or converting inputs."""


@dataclass
class VirelayExport:
    """What :func:`export_virelay` wrote.

    ``projects``: one YAML file per analysed method; ``files``: every file written, with its
    size in bytes; ``skipped``: method keys without an analysis file; ``pixels``: how the inputs
    reach ViRelAy (``"linked"``: virtual datasets over ``input.h5``, ``"uint8"``: a copy, and
    ``why``).
    """

    out: Path
    projects: dict[str, Path]
    files: dict[Path, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    pixels: str = "linked"
    why: str = ""

    @property
    def bytes_added(self) -> int:
        """The size of everything written."""
        return sum(self.files.values())


def export_virelay(directory: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
                   ) -> VirelayExport:
    """Write ViRelAy projects for the analysed methods of the store in ``directory``.

    Raises
    ------
    StoreError
        Not a finished store, no analysis file, an analysis file from an older lumos, or
        inputs ViRelAy cannot draw (other than 1 or 3 channels).
    """
    import h5py

    with open_store(directory) as store:
        folder = store.folder
        target = Path(out) if out is not None else folder / "virelay"
        if target.resolve() == folder.resolve():
            raise StoreError(f"--out {target} is the store itself; the export's input.h5 and "
                             "<stem>.h5 would replace the store's files: choose another folder")
        analysed = {k: layout.analysis_file(folder, k) for k in store.methods}
        skipped = [k for k, p in analysed.items() if not p.is_file()]
        if len(skipped) == len(analysed):
            raise StoreError(f"{folder} has no SpRAy analysis to show; run `lumos spray "
                             f"{folder} --method {store.methods[0]}` first")
        for key, path in analysed.items():
            if key not in skipped:
                check_analysis(path, key)
        result = VirelayExport(target, {}, skipped=skipped)
        with h5py.File(folder / f"{layout.INPUT}.h5", "r") as f:
            shape = _check_inputs(f, folder)
            result.why = _undrawable(f["data"], store)
        result.pixels = "uint8" if result.why else "linked"
        target.mkdir(parents=True, exist_ok=True)
        for key in skipped:  # an earlier export's project would point at a missing analysis
            _remove_stale(target / f"{layout.method_stem(key)}.yaml")
        written = [write_bytes_atomic(_label_map_json(store), target / LABEL_MAP),
                   _write_input(folder, target, shape, result.pixels, store)]
        for key in (k for k in store.methods if k not in skipped):
            data = _write_method(store, key, target)
            project = target / f"{layout.method_stem(key)}.yaml"
            text = _project(store, key, target, data, analysed[key], shape)
            written += [data, write_bytes_atomic(text.encode(), project)]
            result.projects[key] = project
    result.files = {p: p.stat().st_size for p in written}
    return result


def _remove_stale(project: Path) -> None:
    """Delete a project file an earlier export wrote (recognised by its first line)."""
    try:
        first = project.read_text(encoding="utf-8").split("\n", 1)[0]
    except OSError:
        return
    if first.startswith(HEADER):
        project.unlink()


def _check_inputs(f: Any, folder: Path) -> tuple[int, ...]:
    """The shape of ``input.h5``'s ``data``, checked to be what ViRelAy's HDF5 dataset can use:
    1 or 3 channels, row ``i`` holding sample ``i``."""
    shape = tuple(f["data"].shape)
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise StoreError(f"ViRelAy draws images of 1 or 3 channels; {folder}/input.h5 holds "
                         f"data of shape {shape}")
    if "index" in f and not np.array_equal(f["index"][()], np.arange(shape[0])):
        raise StoreError(f"{folder}/input.h5: rows are not the samples 0..{shape[0] - 1}, "
                         "which ViRelAy's HDF5 dataset needs")
    return shape


def check_analysis(path: Path, key: str) -> None:
    """Refuse an analysis file ViRelAy would show wrongly: the spectrum in the ascending order
    of lumos 0.1, or classes with different clusterings (ViRelAy asks every class for the
    first class's)."""
    import h5py

    rerun = f"run `lumos spray {path.parent} --method {key}` again"
    with h5py.File(path, "r") as f:
        if layout.spectrum_order(f) != layout.SPECTRUM_ORDER:
            raise StoreError(f"{path} holds the spectrum smallest first (written by an older "
                             f"lumos); ViRelAy expects CoRelAy's order, largest first: {rerun}")
        names = {g: sorted(f[g]["cluster"]) for g in f}
    if len({tuple(v) for v in names.values()}) > 1:
        raise StoreError(f"{path}: the classes hold different clusterings, and ViRelAy offers "
                         f"the first class's for all of them: {rerun}")


def _label_map_json(store: Store) -> bytes:
    """ViRelAy's label map: every class, ``word_net_id`` the class index as text."""
    names = store.classes
    with store.h5(store.methods[0]) as f:
        count = max(len(names), int(f["prediction"].shape[1]) if "prediction" in f else 0,
                    int(np.max(f["label"][()].astype(np.int64), initial=-1)) + 1)
    entries = [{"index": i, "word_net_id": str(i),
                "name": names[i] if i < len(names) else f"class {i}"} for i in range(count)]
    return (json.dumps(entries, indent=1, ensure_ascii=False) + "\n").encode()


def _undrawable(data: Any, store: Store) -> str:
    """Why ViRelAy would not draw the stored inputs as they are ("" if it would): a
    normalisation to undo, or an image whose range it misreads (its guess takes ``[0, 1]`` only
    when the minimum is >= 0, the maximum <= 1 and their sum above 0.5; below that sum it
    takes ``[-1, 1]`` and washes the image out)."""
    model = store.manifest.get("model", {})
    mean, std = model.get("mean", [0.0]), model.get("std", [1.0])
    if any(float(m) != 0.0 for m in mean) or any(float(s) != 1.0 for s in std):
        return "the model's input normalisation, which ViRelAy cannot undo"
    for start in range(0, data.shape[0], BLOCK):
        x = data[start:start + BLOCK].reshape(-1, int(np.prod(data.shape[1:])))
        lo, hi = x.min(axis=1), x.max(axis=1)
        bad = np.flatnonzero((lo < 0) | (hi > 1) | (lo + hi <= 0.5))
        if len(bad):
            return (f"sample {start + int(bad[0])} has values in [{lo[bad[0]]:.3g}, "
                    f"{hi[bad[0]]:.3g}], which ViRelAy's range guess would misread")
    return ""


def _write_input(folder: Path, out: Path, shape: tuple[int, ...], pixels: str,
                 store: Store) -> Path:
    """``OUT/input.h5``: ``data`` (N, 3, H, W) and ``label`` for ViRelAy's HDF5 dataset."""
    import h5py

    n, channels = shape[0], shape[1]
    source = os.path.relpath(folder / f"{layout.INPUT}.h5", out)
    path = out / f"{layout.INPUT}.h5"
    with atomic_file(path, "w+b") as handle, h5py.File(handle, "w") as f:
        f["label"] = h5py.ExternalLink(source, "label")
        if pixels == "uint8":
            _uint8_copy(folder, f, store)
            source, name, dtype = ".", "pixels", np.uint8
        else:
            with h5py.File(folder / f"{layout.INPUT}.h5", "r") as src:
                name, dtype = "data", src["data"].dtype
        vds = h5py.VirtualLayout((n, 3, *shape[2:]), dtype)
        origin = h5py.VirtualSource(source, name, shape=shape)
        for c in range(3):
            vds[:, c] = origin[:, 0 if channels == 1 else c]
        f.create_virtual_dataset("data", vds)
    return path


def _uint8_copy(folder: Path, f: Any, store: Store) -> None:
    """The inputs with the model's normalisation undone, as 0-255 pixels (``f["pixels"]``)."""
    import h5py

    model = store.manifest.get("model", {})
    with h5py.File(folder / f"{layout.INPUT}.h5", "r") as src:
        data = src["data"]
        c = data.shape[1]
        mean = np.asarray(model.get("mean", [0.0]), np.float64).reshape(1, -1, 1, 1)
        std = np.asarray(model.get("std", [1.0]), np.float64).reshape(1, -1, 1, 1)
        if mean.shape[1] not in (1, c) or std.shape[1] not in (1, c):
            raise StoreError(f"{folder}/manifest.json: the model's mean and std do not fit "
                             f"{c}-channel inputs")
        out = f.create_dataset("pixels", data.shape, np.uint8,
                               chunks=layout.row_chunks(data.shape, 1))
        for start in range(0, data.shape[0], BLOCK):
            x = data[start:start + BLOCK].astype(np.float64) * std + mean
            out[start:start + len(x)] = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _write_method(store: Store, key: str, out: Path) -> Path:
    """``OUT/<stem>.h5``: the method's file as ViRelAy's attribution database, by links."""
    import h5py

    original = store.path(key)
    source = os.path.relpath(original, out)
    path = out / original.name
    with h5py.File(original, "r") as src:
        shape, dtype = tuple(src["attribution"].shape), src["attribution"].dtype
        fields = [k for k in ("label", "prediction") if k in src]
        plain_rows = "index" not in src or np.array_equal(src["index"][()],
                                                          np.arange(shape[0]))
    if "prediction" not in fields:
        raise StoreError(f"{original} has no dataset 'prediction', which ViRelAy shows")
    with atomic_file(path, "w+b") as handle, h5py.File(handle, "w") as f:
        for name in fields if plain_rows else (*fields, "index"):
            f[name] = h5py.ExternalLink(source, name)
        if len(shape) == 4 and shape[1] == 1:
            vds = h5py.VirtualLayout((shape[0], 3, *shape[2:]), dtype)
            vds[:, 0] = h5py.VirtualSource(source, "attribution", shape=shape)[:, 0]
            f.create_virtual_dataset("attribution", vds, fillvalue=0)
        else:
            f["attribution"] = h5py.ExternalLink(source, "attribution")
    return path


def _project(store: Store, key: str, out: Path, data: Path, analysis: Path,
             shape: tuple[int, ...]) -> str:
    """The YAML project file of method ``key`` (paths relative to ``out``)."""
    m = store.manifest
    dataset = m.get("dataset", {})
    strategy = "true_label" if m.get("target") == "label" else "predicted_label"
    project = {"project": {
        "name": f"{store.folder.name}: {key}",
        "model": str(m.get("model", {}).get("spec", "unknown model")),
        "label_map": LABEL_MAP,
        "dataset": {"name": f"{dataset.get('spec', 'dataset')} ({dataset.get('split', '?')})",
                    "type": "hdf5", "path": f"{layout.INPUT}.h5",
                    "input_width": int(shape[3]), "input_height": int(shape[2]),
                    "up_sampling_method": "none", "down_sampling_method": "none"},
        "attributions": {"attribution_method": key, "attribution_strategy": strategy,
                         "sources": [data.name]},
        "analyses": [{"analysis_method": ANALYSIS_METHOD,
                      "sources": [os.path.relpath(analysis, out)]}]}}
    head = (f"{HEADER} for method {key!r} of "
            f"{store.folder.name}\n# (explained class: {m.get('target', '?')}); open it with "
            "`virelay THIS.yaml`\n")
    return head + _yaml(project)


def _yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists, strings and numbers (strings JSON-quoted, which YAML
    reads as double-quoted scalars)."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                lines.append(f"{pad}{k}:\n{_yaml(v, indent + 1)}")
            else:
                lines.append(f"{pad}{k}: {json.dumps(v)}\n")
    else:
        for item in value:
            text = _yaml(item, indent + 1) if isinstance(item, (dict, list)) else \
                f"{pad}  {json.dumps(item)}\n"
            lines.append(f"{pad}- {text.lstrip()}")
    return "".join(lines)

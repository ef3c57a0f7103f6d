"""The dataset store: explanations of a whole dataset in HDF5, resumable, one or many processes.

- :func:`explain_dataset` (also ``lumos.explain_dataset`` and ``lumos explain-dataset``) writes
  a store; :func:`open_store` reads it (:class:`Store`).
- :mod:`lumos.store.layout`: the files and their HDF5 layout (ViRelAy's specification).
- :mod:`lumos.store.keyed`: resumable work keyed by its settings (also used by ``reproduce``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lumos.store.reader import Store, StoreError, open_store, read_manifest

__all__ = ["Store", "StoreError", "explain_dataset", "open_store", "read_manifest"]

if TYPE_CHECKING:  # pragma: no cover
    from lumos.store.pipeline import explain_dataset


def __getattr__(name: str) -> Any:
    if name == "explain_dataset":
        from lumos.store.pipeline import explain_dataset

        return explain_dataset
    raise AttributeError(f"module 'lumos.store' has no attribute {name!r}")

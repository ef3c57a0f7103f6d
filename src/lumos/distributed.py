"""Rank, world size and device from torchrun's environment; nothing else.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` set) :func:`setup`
joins the process group: NCCL when every rank has a CUDA device, gloo otherwise. Outside
torchrun it is a one-process world and nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` of ``size`` processes, its device, the backend."""

    rank: int
    size: int
    local_rank: int
    device: torch.device
    backend: str | None
    joined: bool = False  # this module initialised the process group (and so tears it down)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that checks settings, merges shards and writes the manifest."""
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from torchrun's variables; ``(0, 1, 0)`` without."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(requested: str | torch.device | None, local_rank: int) -> torch.device:
    """The device of this rank: ``requested`` as given, except that a bare ``cuda`` becomes
    ``cuda:<local rank>`` (one GPU per process); default: that GPU when CUDA is there, else cpu.
    """
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return device


def setup(requested_device: str | torch.device | None = None) -> World:
    """Join torchrun's process group (if any) and return this process's :class:`World`."""
    rank, size, local = env_world()
    device = pick_device(requested_device, local)
    backend, joined = None, False
    if size > 1:
        import torch.distributed as dist

        backend = "nccl" if device.type == "cuda" else "gloo"
        if dist.is_initialized():
            backend = str(dist.get_backend())
        else:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group(backend=backend, rank=rank, world_size=size)
            joined = True
    return World(rank, size, local, device, backend, joined)


def barrier(world: World) -> None:
    """Wait for every rank (no-op in a one-process world)."""
    if world.size > 1:
        import torch.distributed as dist

        if world.backend == "nccl":
            dist.barrier(device_ids=[world.device.index or 0])
        else:
            dist.barrier()


def broadcast(world: World, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (pickled; for small objects such as a message)."""
    if world.size == 1:
        return value
    import torch.distributed as dist

    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0,
                               device=world.device if world.backend == "nccl" else None)
    return box[0]


def teardown(world: World) -> None:
    """Leave the process group if :func:`setup` joined it (a caller's own group stays)."""
    if world.joined:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

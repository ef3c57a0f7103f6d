"""Sub-commands of the ``lumos`` command line (see :mod:`lumos.cli`), and what they share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: What ``--model`` takes (resolved by :func:`lumos.models.specs.resolve`).
MODEL_HELP = ("a lumos checkpoint (.safetensors with its JSON sidecar), 'mnist5k-cnn', "
              "'efficientnet-lite0', a torchvision model name (weights from the torch cache, or "
              "--weights FILE), timm:NAME (weights from the timm / Hugging Face cache, or "
              "--weights FILE), a Hugging Face model folder (save_pretrained), or hf:ORG/NAME "
              "(a hub id in the local Hugging Face cache); nothing is downloaded")


def resolve_device(name: str) -> torch.device:
    """The torch device ``--device name`` asks for, checked to be usable on this machine.

    Raises :class:`lumos.errors.UserError` with one line saying what is wrong (not a device name,
    no CUDA or MPS here, no such CUDA index) instead of torch's error deep inside a run.
    """
    import torch

    from lumos.errors import UserError

    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:N "
                        "or mps") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "no CUDA GPU is visible")
            raise UserError(f"--device {name}: CUDA is not available on this machine ({why}); "
                            "use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA device(s), "
                            f"cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine; "
                        "use --device cpu")
    elif device.type == "meta":
        raise UserError("--device meta holds no data and cannot run a model; use --device cpu")
    try:
        torch.empty(1, device=device)
    except Exception as err:  # any other backend: torch's errors differ by backend and version
        first = str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else ""
        raise UserError(f"--device {name} cannot be used on this machine: "
                        f"{first or type(err).__name__}") from err
    return device

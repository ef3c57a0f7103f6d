"""LRP memory: the peak RSS of a first lumos call beside a plain gradient's, same model.

Each measurement runs in a fresh process: build the model (torchvision ViT-B/16 by default,
random weights, eval mode) and the input (batch 1, 224x224), reset the kernel's peak-RSS mark
(``/proc/self/clear_refs``), run the call once, and read the peak (``VmHWM``) less the resident
size before the call. The lumos call is a first ``CPLRP`` call (preparation included: the
private copy, the capture, the check that it reproduces the model); the reference is one input
gradient of the same score. The extra peak is printed in units of the model's parameter bytes
(the issue's limit: 0.25x); medians over ``--repeats`` process pairs (the machine is shared,
so single runs are noisy). Linux only.

    .venv/bin/python bench/lrp_memory.py [--model vit_b_16] [--composite CPLRP] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def child(model_name: str, call: str, composite: str, threads: int) -> None:
    """Measure one call in this process; print a JSON line."""
    import gc

    import torch
    import torchvision

    import lumos
    from lumos.lrp import composites

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    with torch.no_grad():   # torchvision's zero-initialised heads give no relevance
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and not m.weight.any():
                m.weight.normal_(0.0, 0.02)
    x = torch.randn(1, 3, 224, 224)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # reset the peak-RSS mark to the current RSS
    before = _status("VmRSS")
    if call == "gradient":
        leaf = x.requires_grad_(True)
        model(leaf)[:, 1].sum().backward()
    else:
        lumos.LRP(model, getattr(composites, composite)()).attribute(x, target=1)
    print(json.dumps({"extra": _status("VmHWM") - before, "params": params}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_b_16")
    parser.add_argument("--composite", default="CPLRP")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=("gradient", "lumos"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model, args.child, args.composite, args.threads)
        return
    runs: dict[str, list[int]] = {"gradient": [], "lumos": []}
    params = 0
    for _ in range(args.repeats):
        for call in runs:
            out = subprocess.run([sys.executable, __file__, "--child", call, "--model",
                                  args.model, "--composite", args.composite, "--threads",
                                  str(args.threads)], check=True, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1]
            result = json.loads(out)
            runs[call].append(result["extra"])
            params = result["params"]
    med = {k: statistics.median(v) for k, v in runs.items()}
    excess = [(a - b) / params for a, b in zip(runs["lumos"], runs["gradient"], strict=True)]
    mib = 1 << 20
    print(f"{args.model} batch 1 224x224, {args.repeats} process pairs: parameters "
          f"{params / mib:.0f} MiB | peak above the resident size: gradient "
          f"{med['gradient'] / mib:.0f} MiB, first lumos {args.composite} call "
          f"{med['lumos'] / mib:.0f} MiB | lumos extra = {statistics.median(excess):.2f}x the "
          f"parameter bytes (runs: {', '.join(f'{e:.2f}' for e in excess)})", flush=True)


if __name__ == "__main__":
    main()

"""Inference speed of a TransformerNet on each of stylenet's paths, against the plain baseline.

Baseline: eager fp32, NCHW, batch 1 — what pytorch/examples' fast_neural_style does. Every path
runs in this process on the same weights and inputs; each (path, size) is warmed up, then timed
`--repeats` times and the median reported, with its ratio to the baseline at the same size
(time / baseline time: < 1 is faster).

    python scripts/bench_stylize.py                       # random-init Johnson net, CPU
    python scripts/bench_stylize.py --model run/model.pt --sizes 256 1024
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from stylenet.errors import ConfigError
from stylenet.inference.backends import load_backend
from stylenet.inference.export import export_onnx, export_torchscript
from stylenet.inference.model_file import load_model, save_model
from stylenet.models import TransformerNet

SIZES = {
    "256": (256, 256),
    "512": (512, 512),
    "720p": (720, 1280),
    "1024": (1024, 1024),
    "1080p": (1080, 1920),
}


def timed(fn: Callable[[Tensor], Tensor], x: Tensor, *, repeats: int, sync: bool) -> float:
    """Median seconds of fn(x) after warm-up (two calls: compiled paths compile on the first)."""
    fn(x)
    fn(x)
    if sync:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model.pt (default: random-init Johnson net)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            torch.manual_seed(0)
            model = save_model(TransformerNet(), Path(tmp) / "model.pt")
        net = load_model(model)
        assert isinstance(net, TransformerNet)
        ts_path, onnx_path = Path(tmp) / "model.torchscript.pt", Path(tmp) / "model.onnx"
        export_torchscript(net, ts_path)
        export_onnx(net, onnx_path)

        paths: dict[str, Callable[[Tensor], Tensor]] = {}
        paths["baseline (eager fp32 NCHW)"] = load_backend(model, device=device, backend="eager")
        # The default: what `stylenet-stylize model.pt` and `stylenet.load` run. Its one-time
        # conversion (a model file to ONNX, on a CPU) is timed apart, in a fresh cache.
        os.environ["STYLENET_CACHE"] = str(Path(tmp) / "cache")
        start = time.perf_counter()
        default = load_backend(model, device=device, backend="auto")
        first_load = time.perf_counter() - start
        start = time.perf_counter()
        load_backend(model, device=device, backend="auto")
        cached_load = time.perf_counter() - start
        paths[f"default (auto: {default.name})"] = default
        paths["eager channels_last"] = load_backend(
            model, device=device, backend="eager", channels_last=True
        )
        paths["torchscript"] = load_backend(ts_path, device=device)
        paths["torchscript channels_last"] = load_backend(
            ts_path, device=device, channels_last=True
        )
        if not cuda:
            paths["onnxruntime"] = load_backend(onnx_path, device=device)
        paths["eager compiled"] = load_backend(model, device=device, backend="eager", compile=True)
        for precision in ("fp16", "bf16"):
            try:
                paths[f"eager {precision}"] = load_backend(
                    model, device=device, backend="eager", precision=precision
                )
                paths[f"eager {precision} compiled"] = load_backend(
                    model, device=device, backend="eager", precision=precision, compile=True
                )
                if cuda:
                    paths[f"eager {precision} channels_last"] = load_backend(
                        model,
                        device=device,
                        backend="eager",
                        precision=precision,
                        channels_last=True,
                    )
            except ConfigError as err:  # the device does not have this precision
                print(f"skipping {precision}: {err}")

        print(
            f"device: {device} ({torch.cuda.get_device_name() if cuda else platform.processor()}"
            f", {torch.get_num_threads()} threads), torch {torch.__version__}, "
            f"model {args.model or 'random-init Johnson net'}, median of {args.repeats}\n"
        )
        header = f"| path | {' | '.join(args.sizes)} | max abs diff vs baseline |"
        print(header + "\n|---|" + "---|" * (len(args.sizes) + 1))
        base: dict[str, float] = {}
        probe = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1)).to(device)
        with torch.inference_mode():
            reference = next(iter(paths.values()))(probe)
        for name, fn in paths.items():
            cells = []
            for size in args.sizes:
                h, w = SIZES[size]
                x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
                with torch.inference_mode():
                    sec = timed(fn, x, repeats=args.repeats, sync=cuda)
                base.setdefault(size, sec)
                mp = h * w / 1e6
                cells.append(
                    f"{1 / sec:.2f} img/s, {1000 * sec / mp:.0f} ms/MP, ×{sec / base[size]:.2f}"
                )
            with torch.inference_mode():
                diff = (fn(probe).float() - reference).abs().max().item()
            print(f"| {name} | {' | '.join(cells)} | {diff:.1e} |", flush=True)
        print("\n×: time relative to the baseline at the same size (lower is faster)")
        print(
            f"default backend {default.name}: first load {first_load:.2f} s (with the model "
            f"file's conversion), later loads {cached_load:.2f} s (cached)"
        )


if __name__ == "__main__":
    main()

"""`stylenet-stylize --all-styles` on a video (one decode; each batch of frames in every style in
one forward pass; N videos written side by side) against the baseline of one `--style NAME` run
per style, in this process, taking turns, median of `--repeats`.

    python scripts/bench_video_styles.py                     # the paper's network, 4 styles
    python scripts/bench_video_styles.py --frames 96 --size 640 480
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import stylenet
from stylenet.cli.stylize import main as stylize
from stylenet.inference.model_card import ModelCard, StyleRecord
from stylenet.inference.model_file import save_model
from stylenet.models import TransformerNet


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A 24 fps H.264 clip of a gradient panning under a bright square (near-lossless)."""
    import av
    import numpy as np

    x = np.linspace(0, 255, width + frames * 4)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "10"}
        for t in range(frames):
            rgb = np.concatenate(
                [
                    x[:, t * 4 : t * 4 + width].repeat(height, 0),
                    y.repeat(width, 1),
                    128 + 0 * y.repeat(width, 1),
                ],
                axis=2,
            ).astype(np.uint8)
            rgb[height // 3 : height // 2, t * 3 % width : t * 3 % width + 20] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--styles", type=int, default=4)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    names = [f"s{i}" for i in range(args.styles)]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        os.environ["STYLENET_CACHE"] = str(tmp / "cache")
        torch.manual_seed(0)
        card = ModelCard(network="", styles=tuple(StyleRecord(n) for n in names))
        model = save_model(TransformerNet(num_styles=len(names)).eval(), tmp / "m.pt", card=card)
        w, h = args.size
        clip = make_clip(tmp / "clip.mp4", w, h, args.frames)
        stylenet.load(model, device="cpu")  # the default backend's one-off conversion, untimed
        together, apart = [], []
        for r in range(args.repeats):
            start = time.perf_counter()
            out = tmp / f"all{r}.mp4"
            assert stylize([str(model), str(clip), "-o", str(out), "--all-styles", "-q"]) == 0
            together.append(time.perf_counter() - start)
            start = time.perf_counter()
            for n in names:
                out = tmp / f"{n}_{r}.mp4"
                assert stylize([str(model), str(clip), "-o", str(out), "--style", n, "-q"]) == 0
            apart.append(time.perf_counter() - start)
    base, all_styles = statistics.median(apart), statistics.median(together)
    print(f"\n{args.frames} frames of {w}×{h}, the paper's network with {len(names)} styles")
    print("| path | seconds | × baseline |\n|---|---|---|")
    print(f"| one --style run per style (baseline) | {base:.2f} | ×1.00 |")
    print(f"| --all-styles | {all_styles:.2f} | ×{all_styles / base:.2f} |")


if __name__ == "__main__":
    main()

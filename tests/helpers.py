"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import shlex
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor

from stylenet.inference.model_card import ModelCard, StyleRecord
from stylenet.models import SuperResolutionNet, TransformerNet

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"  # the project's data, where it sits beside the repo
FPS = 12
FRAMES = 24

# The `compose_train` fixture: (overrides, output dir) -> composed configs/train.yaml.
ComposeTrain = Callable[[list[str], Path], DictConfig]


class PlantedCode:
    """Pickles as a call of ``os.system("touch MARKER")``: planted in a file stylenet reads, it
    shows whether anything unpickled it (`marker` appears) or refused it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def tiny_net() -> TransformerNet:
    """A small TransformerNet in eval mode with random instance-norm affines."""
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1)
    # Instance-norm affines start at exactly 1/0; randomize them so a mix-up between layers
    # (e.g. the ONNX optimizer sharing equal initializers) would show.
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 1 and "conv" not in name:
                if name.endswith("weight"):
                    p.copy_(1 + 0.3 * torch.randn_like(p))
                else:
                    p.normal_(0, 0.3)
    return net.eval()


def save_tiny_model(folder: Path) -> tuple[Path, TransformerNet]:
    """`tiny_net()` written as ``folder/model.pt`` (metadata ``{"style": "x"}``)."""
    from stylenet.inference.model_file import save_model

    net = tiny_net()
    return save_model(net, folder / "model.pt"), net


def tiny_sr_net(scale: int = 4) -> SuperResolutionNet:
    """A small SuperResolutionNet in eval mode with random weights everywhere: its last conv
    starts near zero (an untrained net is about bicubic), which would let a bug hide."""
    torch.manual_seed(0)
    net = SuperResolutionNet(scale=scale, channels=8, num_residual_blocks=1)
    with torch.no_grad():
        for p in net.tail.parameters():
            p.normal_(0.0, 0.05)
    return net.eval()


def save_tiny_sr_model(folder: Path, scale: int = 4) -> tuple[Path, SuperResolutionNet]:
    """`tiny_sr_net(scale)` written as ``folder/model.pt`` with a super-resolution card."""
    from stylenet.inference.model_file import save_model

    net = tiny_sr_net(scale)
    folder.mkdir(parents=True, exist_ok=True)
    card = ModelCard(network="", task="superres")
    return save_model(net, folder / "model.pt", card=card), net


def save_tiny_multistyle_model(folder: Path, names: list[str]) -> tuple[Path, TransformerNet]:
    """A tiny random model.pt carrying `names` (conditional norms' γ, β drawn apart, so each
    style gives another picture), written as ``folder/model.pt``."""
    from stylenet.inference.model_file import save_model
    from stylenet.models import ConditionalInstanceNorm2d

    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1, num_styles=len(names)).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.weight.copy_(1 + 0.5 * torch.randn_like(m.weight))
                m.bias.normal_(0, 0.5)
    card = ModelCard(network="", styles=tuple(StyleRecord(n) for n in names))
    path = save_model(net, folder / "model.pt", card=card)
    return path, net


def run_cli(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str, str]:
    """A console script's main() in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's CSV log (logger=csv or many)."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def val_series(rows: list[dict[str, str]], key: str) -> list[tuple[int, float]]:
    """(step, value) of `key` in the rows that have it."""
    return [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]


def tiny_run_overrides(style: Path, photos: Path, *, steps: int = 4) -> list[str]:
    """A CPU training run of a few seconds: tiny crops, small batches, no worker processes."""
    return [
        f"style.image={style}",
        f"data.root={photos}",
        "trainer=cpu",
        "train.compile=false",  # a minute of compiling; tests/training/test_module.py covers it
        "trainer.precision=32-true",  # not the CPU probe's choice: the same numbers everywhere
        "data.image_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.max_val_images=2",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={max(1, steps // 2)}",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        f"callbacks.model_checkpoint.every_n_train_steps={max(1, steps // 2)}",
        "style.size=64",
    ]


def photo(
    path: Path, size: tuple[int, int] = (57, 35), colour: tuple[int, int, int] = (200, 30, 30)
) -> Path:
    """A small noisy photo of one colour, (W, H) = `size`, written to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arr = (rng.random((size[1], size[0], 3)) * 60 + np.array(colour) * 0.7).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def encoder(*names: str) -> str:
    for name in names:
        try:
            av.Codec(name, "w")
        except Exception:  # PyAV raises several types for "no such encoder"
            continue
        return name
    pytest.skip(f"none of the encoders {names} is in this FFmpeg build")


def make_video(
    path: Path,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = FRAMES,
    fps: int = FPS,
    audio: str | None = None,
) -> Path:
    """A square moving over a gradient; near-lossless so the decoded input is the reference."""
    webm = path.suffix == ".webm"
    vcodec = encoder("libvpx-vp9") if webm else encoder("libx264", "mpeg4")
    with av.open(str(path), "w") as out:
        video = out.add_stream(vcodec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv444p" if vcodec != "mpeg4" else "yuv420p"
        if vcodec in ("libx264", "libvpx-vp9"):
            video.options = {"crf": "4"} if vcodec == "libx264" else {"crf": "4", "b": "0"}
        sound = None
        if audio is not None:
            sound = out.add_stream(encoder(audio), rate=48000)
            sound.layout = "stereo"
        ramp = np.linspace(40, 160, width, dtype=np.float32)
        samples = 0
        for i in range(frames):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = ramp.astype(np.uint8)
            img[..., 1] = 90
            img[..., 2] = 200 - ramp.astype(np.uint8)
            x = (i * 3) % (width - 12)
            img[10:22, x : x + 12] = (240, 220, 30)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
            if sound is not None:
                n = sound.rate // fps
                t = (np.arange(n) + samples) / sound.rate
                tone = (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(
                    np.stack([tone, tone]).T.reshape(1, -1).copy(), format="flt", layout="stereo"
                )
                chunk.sample_rate, chunk.pts = sound.rate, samples
                chunk.time_base = Fraction(1, sound.rate)
                samples += n
                for packet in sound.encode(chunk):
                    out.mux(packet)
        for stream in (video, sound):
            if stream is not None:
                for packet in stream.encode(None):
                    out.mux(packet)
    return path


def read_video(path: Path) -> tuple[Tensor, list[Fraction], Fraction]:
    """All frames as (N, 3, H, W) float in [0, 1], their times in seconds, the average rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            times.append(frame.pts * frame.time_base)
        rate = Fraction(stream.average_rate)
    return torch.stack(frames).permute(0, 3, 1, 2).float() / 255, times, rate

"""How much a frame-by-frame network flickers: the warping error of its outputs.

The warping error of a clip is the mean over frame pairs of mean |O[t+1] − W(O[t])| over the
pixels the motion W keeps visible, in [0, 1] units, where W moves frame t onto frame t+1. The
same number for the input frames is the floor: 0 where W is exact, the resampling error where it
interpolates, the flow's error on real video.

- `camera_moves`: clips made from one photo by a camera move known exactly: an integer pan,
  a zoom, a rotation, and a still shot with fresh sensor noise in every frame. The pan is exact
  (pixels shift by whole steps); zoom and rotation resample, so their floor is above 0; the
  noisy still has W = identity and its ratio output/input is the *noise gain*.
- `flow_warping_error`: real video, W from DIS optical flow with an occlusion mask
  (`stylenet.inference.flow`; Lai et al. 2018's and Ruder et al. 2016's recipe).

    clips = camera_moves(photo)                          # photo: (3, H, W) in [0, 1]
    scores = [score_clip(lambda x: net(x), clip) for clip in clips]
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from stylenet.errors import ConfigError, OutputExistsError
from stylenet.evaluation.evaluate import write_text
from stylenet.inference.api import load
from stylenet.inference.flow import FramePair
from stylenet.inference.styles import StyleKey
from stylenet.inference.temporal import DEFAULT_STRENGTH, TemporalBlend
from stylenet.io.images import find_images, load_image_tensor
from stylenet.io.video import VideoReadError, read_frames
from stylenet.losses.motion import motion_matrix, warp

# The synthetic set (issue 18): 320×240, 24 frames, pan 2 px/frame, still + noise σ = 2/255.
MOVES_SIZE = (240, 320)
MOVES_FRAMES = 24
PAN_STEP = 2  # px per frame
ZOOM_STEP = 1.01  # per frame
ROTATE_STEP = 0.5  # degrees per frame
NOISE_SIGMA = 2 / 255
MOVES = ("pan", "zoom", "rotate", "noise")


@dataclass(frozen=True)
class Clip:
    """Frames of a camera move and the exact map between consecutive frames.

    Attributes:
        name: "pan", "zoom", "rotate" or "noise".
        frames: (T, 3, H, W) in [0, 1].
        pan: For "pan": the whole-pixel shift per frame (frame t+1 = frame t moved left by
            `pan`); else 0.
        theta: For zoom and rotate: the (2, 3) `affine_grid` map from each pixel of frame t+1
            to where it was in frame t; None for pan and noise.
    """

    name: str
    frames: Tensor
    pan: int = 0
    theta: Tensor | None = None

    def step(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(following, moved, visible) for every consecutive pair of `frames` (T, C, H, W)
        (this clip's frames, or a network's outputs of them): frames 1..T-1, frames 0..T-2
        moved onto them, and the (T-1, 1, H, W) mask of pixels the move keeps visible."""
        prev, following = frames[:-1], frames[1:]
        ones = torch.ones_like(following[:, :1])
        if self.pan:
            p = self.pan
            visible = ones.clone()
            visible[..., -p:] = 0
            moved = torch.zeros_like(prev)
            moved[..., :-p] = prev[..., p:]
            return following, moved, visible
        if self.theta is None:  # a still shot
            return following, prev, ones
        theta = self.theta.to(frames).expand(prev.shape[0], 2, 3)
        moved, visible = warp(prev.float(), theta, padding="zeros")
        return following, moved.to(frames.dtype), visible


def _cover(photo: Tensor, height: int, width: int) -> Tensor:
    """`photo` (3, h, w) scaled (antialiased bicubic) to cover height×width, centre-cropped."""
    _, h, w = photo.shape
    scale = max(height / h, width / w)
    size = (max(height, math.ceil(h * scale)), max(width, math.ceil(w * scale)))
    big = F.interpolate(photo[None], size=size, mode="bicubic", antialias=True)[0].clamp(0, 1)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return big[:, top : top + height, left : left + width]


def camera_moves(
    photo: Tensor,
    *,
    size: tuple[int, int] = MOVES_SIZE,
    frames: int = MOVES_FRAMES,
    moves: Sequence[str] = MOVES,
    seed: int = 0,
) -> list[Clip]:
    """The synthetic clips of one photo (3, h, w) in [0, 1], each (frames, 3, *size).

    Args:
        photo: Any size; it is scaled to cover each clip's view.
        size: (height, width) of the frames.
        frames: Frames per clip (>= 2).
        moves: Which of `MOVES` to make.
        seed: The noise clip's random source.
    """
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    unknown = set(moves) - set(MOVES)
    if unknown:
        raise ValueError(f"unknown camera moves {sorted(unknown)}; choose from {MOVES}")
    h, w = size
    clips = []
    for name in moves:
        if name == "pan":
            strip = _cover(photo, h, w + PAN_STEP * (frames - 1))
            seq = torch.stack([strip[..., PAN_STEP * t : PAN_STEP * t + w] for t in range(frames)])
            clips.append(Clip(name, seq, pan=PAN_STEP))
        elif name == "noise":
            still = _cover(photo, h, w)
            g = torch.Generator().manual_seed(seed)
            noise = torch.randn((frames, *still.shape), generator=g) * NOISE_SIGMA
            clips.append(Clip(name, (still + noise).clamp(0, 1)))
        else:
            zoom, angle, base_zoom = (
                (ZOOM_STEP, 0.0, 1.0)
                if name == "zoom"
                else (1.0, ROTATE_STEP, _rotate_zoom(frames, w / h))
            )
            base = _cover(photo, h, w)
            mats = [
                motion_matrix(
                    torch.zeros(1, 2),
                    torch.tensor([base_zoom * zoom**t]),
                    torch.tensor([math.radians(angle * t)]),
                    w / h,
                )
                for t in range(frames)
            ]
            seq = torch.cat([warp(base[None], m)[0] for m in mats]).clamp(0, 1)
            step = motion_matrix(
                torch.zeros(1, 2), torch.tensor([zoom]), torch.tensor([math.radians(angle)]), w / h
            )[0]
            clips.append(Clip(name, seq, theta=step))
    return clips


def _rotate_zoom(frames: int, aspect: float) -> float:
    """The zoom that keeps a view turned by up to the clip's last angle inside the photo."""
    a = math.radians(ROTATE_STEP * (frames - 1))
    # A w×h box turned by a fits in the unturned box when scaled by cos a + sin a · max(w/h, h/w).
    return math.cos(a) + math.sin(a) * max(aspect, 1 / aspect)


def warping_error(frames: Tensor, clip: Clip) -> float:
    """Mean |frame[t+1] − W(frame[t])| over the visible pixels of every pair, [0, 1] units."""
    following, moved, visible = clip.step(frames.float())
    per_pair = ((following - moved).abs() * visible).sum(dim=(1, 2, 3)) / (
        visible.sum(dim=(1, 2, 3)) * frames.shape[1]
    ).clamp_min(1)
    return float(per_pair.mean())


@dataclass(frozen=True)
class TemporalScore:
    """Warping error of one clip (or a mean over clips of one kind).

    Attributes:
        clip: The clip kind ("pan", ..., or "video").
        input_error: The input frames' warping error (the floor).
        output_error: The outputs'.
    """

    clip: str
    input_error: float
    output_error: float

    @property
    def ratio(self) -> float:
        """output / input; for the noisy still, the noise gain."""
        return self.output_error / self.input_error if self.input_error > 0 else math.inf

    @staticmethod
    def mean(scores: Iterable[TemporalScore]) -> TemporalScore:
        scores = list(scores)
        return TemporalScore(
            scores[0].clip,
            float(np.mean([s.input_error for s in scores])),
            float(np.mean([s.output_error for s in scores])),
        )


@torch.no_grad()
def score_clip(
    run: Callable[[Tensor], Tensor], clip: Clip, *, batch_size: int = 8
) -> TemporalScore:
    """Run `run` ((B, 3, H, W) -> same, in [0, 1]) over the clip's frames in batches and
    score its outputs and the inputs."""
    outputs = torch.cat(
        [
            run(clip.frames[i : i + batch_size]).float().cpu().clamp(0, 1)
            for i in range(0, len(clip.frames), batch_size)
        ]
    )
    return TemporalScore(clip.name, warping_error(clip.frames, clip), warping_error(outputs, clip))


def score_moves(
    run: Callable[[Tensor], Tensor],
    photos: Iterable[Tensor],
    *,
    size: tuple[int, int] = MOVES_SIZE,
    frames: int = MOVES_FRAMES,
    moves: Sequence[str] = MOVES,
) -> dict[str, TemporalScore]:
    """{move: mean score over the photos} of `run` on every photo's synthetic clips."""
    per_move: dict[str, list[TemporalScore]] = {m: [] for m in moves}
    for photo in photos:
        for clip in camera_moves(photo, size=size, frames=frames, moves=moves):
            per_move[clip.name].append(score_clip(run, clip))
    return {m: TemporalScore.mean(s) for m, s in per_move.items() if s}


class FlowWarpingError:
    """The warping error of a real video, frame pair by frame pair, with W from DIS flow of the
    *input* frames and Ruder et al.'s occlusion mask; streams (keeps one previous frame).

    ``update(inputs, outputs)`` takes consecutive (B, H, W, 3) uint8 frames of both.
    """

    def __init__(self) -> None:
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.input_total = self.output_total = 0.0
        self.pairs = 0
        self.reliable_total = 0.0

    def update(self, inputs: np.ndarray, outputs: np.ndarray) -> None:
        for frame_in, frame_out in zip(inputs, outputs, strict=True):
            if self.previous is not None:
                prev_in, prev_out = self.previous
                pair = FramePair.estimate(prev_in, frame_in)
                mask = pair.reliable
                if mask.any():
                    self.input_total += _masked_error(pair.warp(prev_in), frame_in, mask)
                    self.output_total += _masked_error(pair.warp(prev_out), frame_out, mask)
                    self.reliable_total += float(mask.mean())
                    self.pairs += 1
            self.previous = (frame_in, frame_out)

    def score(self) -> TemporalScore:
        if not self.pairs:
            raise ValueError("no frame pair with reliable flow: the warping error is undefined")
        return TemporalScore("video", self.input_total / self.pairs, self.output_total / self.pairs)

    @property
    def reliable_fraction(self) -> float:
        """Mean fraction of pixels the occlusion test kept."""
        return self.reliable_total / self.pairs if self.pairs else 0.0


def _masked_error(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=-1)
    return float(diff[mask].mean()) / 255.0


def flow_warping_error(
    inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]
) -> TemporalScore:
    """`FlowWarpingError` of whole frame lists ((H, W, 3) uint8 each)."""
    meter = FlowWarpingError()
    meter.update(np.stack(inputs), np.stack(outputs))
    return meter.score()


# --- stylenet-evaluate --moves / --video -------------------------------------------------------


@dataclass(frozen=True)
class TemporalRow:
    """One clip scored by one method.

    Attributes:
        source: The photo (its file name) or video the clip came from.
        clip: "pan", "zoom", "rotate", "noise" or "video".
        method: "model" (frame by frame) or "model --temporal S" (the flow-guided blend).
        input_error: The input frames' warping error (the floor).
        output_error: The outputs'.
        seconds_per_frame: Stylizing time per frame (the blend included), videos only.
    """

    source: str
    clip: str
    method: str
    input_error: float
    output_error: float
    seconds_per_frame: float | None = None

    @property
    def ratio(self) -> float:
        return self.output_error / self.input_error if self.input_error > 0 else math.inf


@dataclass(frozen=True)
class TemporalReport:
    """The warping errors of one model: per clip, and means per (clip kind, method)."""

    model: str
    rows: list[TemporalRow]
    size: tuple[int, int]
    frames: int

    def means(self) -> list[TemporalRow]:
        keys = list(dict.fromkeys((r.clip, r.method) for r in self.rows))
        out = []
        for clip, method in keys:
            rows = [r for r in self.rows if (r.clip, r.method) == (clip, method)]
            times = [r.seconds_per_frame for r in rows if r.seconds_per_frame is not None]
            out.append(
                TemporalRow(
                    f"mean of {len(rows)}",
                    clip,
                    method,
                    float(np.mean([r.input_error for r in rows])),
                    float(np.mean([r.output_error for r in rows])),
                    float(np.mean(times)) if times else None,
                )
            )
        return out

    def metrics(self, prefix: str = "eval/temporal") -> dict[str, float]:
        """Flat numbers for loggers: ``<prefix>/<clip>`` (output warping error; the noise
        gain for the noisy still) per frame-by-frame mean."""
        flat = {}
        for row in self.means():
            key = f"{prefix}/{row.clip}" + ("" if row.method == "model" else "_temporal")
            flat[key] = row.ratio if row.clip == "noise" else row.output_error
        return flat

    def markdown(self) -> str:
        h, w = self.size
        lines = [
            f"# Temporal stability of {self.model}",
            "",
            f"Warping error: mean |O[t+1] − W(O[t])| over the pixels W keeps visible, [0, 1] "
            f"units. Synthetic camera moves: {w}×{h}, {self.frames} frames, pan {PAN_STEP} "
            f"px/frame (exact), zoom ×{ZOOM_STEP}/frame, rotation {ROTATE_STEP}°/frame, still "
            f"+ noise σ = 2/255 (its ratio is the noise gain). Videos: W from DIS optical flow "
            "of the input frames, occlusions and motion boundaries left out (Ruder et al. 2016).",
            "",
            "| clip | method | source | input (floor) | output | output / input | s/frame |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in [*self.means(), *self.rows]:
            seconds = "" if row.seconds_per_frame is None else f"{row.seconds_per_frame:.3f}"
            lines.append(
                f"| {row.clip} | {row.method} | {row.source} | {row.input_error:.4f} | "
                f"{row.output_error:.4f} | {row.ratio:.2f} | {seconds} |"
            )
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        import json

        return json.dumps(
            {
                "model": self.model,
                "size": list(self.size),
                "frames": self.frames,
                "means": [_row_dict(r) for r in self.means()],
                "rows": [_row_dict(r) for r in self.rows],
            },
            indent=2,
        )


def _row_dict(row: TemporalRow) -> dict[str, object]:
    ratio = row.ratio
    return {
        "source": row.source,
        "clip": row.clip,
        "method": row.method,
        "input_error": row.input_error,
        "output_error": row.output_error,
        "ratio": ratio if math.isfinite(ratio) else None,
        "seconds_per_frame": row.seconds_per_frame,
    }


def score_video(
    stylize: Callable[[Tensor], Tensor],
    video: str | os.PathLike[str],
    *,
    temporal: float | None = None,
    batch_size: int = 4,
    max_frames: int | None = None,
) -> tuple[TemporalScore, float, int]:
    """(score, seconds per frame, frames) of `stylize` on a video file, frame by frame or,
    with `temporal`, with the flow-guided blend of that strength (`TemporalBlend`); the
    seconds count the stylizing (and the blend), not decoding or the metric."""
    run = TemporalBlend(stylize, temporal) if temporal is not None else stylize
    meter = FlowWarpingError()
    seconds, count = 0.0, 0
    batch: list[np.ndarray] = []

    def flush() -> None:
        nonlocal seconds, count
        frames = np.stack(batch)
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        start = time.perf_counter()
        out = run(x).clamp(0, 1)
        seconds += time.perf_counter() - start
        out8 = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        meter.update(frames, out8)
        count += len(frames)
        batch.clear()

    for frame in read_frames(video, max_frames=max_frames):
        batch.append(frame)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if count < 2:
        raise VideoReadError(video, f"{count} frame(s); the warping error needs at least 2")
    if not meter.pairs:  # every pair failed the occlusion test (cuts, flashes, blank frames)
        raise VideoReadError(video, "no frame pair with reliable optical flow: nothing to score")
    return meter.score(), seconds / count, count


TEMPORAL_FILES = ("temporal.json", "temporal.md")


def evaluate_temporal(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    content: str | os.PathLike[str] | None = None,
    videos: Sequence[str | os.PathLike[str]] = (),
    temporal: float | None = None,
    device: str | None = None,
    model_style: StyleKey | None = None,
    moves: Sequence[str] = MOVES,
    size: tuple[int, int] = MOVES_SIZE,
    frames: int = MOVES_FRAMES,
    max_video_frames: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> TemporalReport:
    """Warping errors of a style model on the synthetic camera moves (`moves`) of every photo
    under `content` and on each video (frame by frame and, with `temporal`, with the flow-guided
    blend of that strength); writes ``temporal.json`` and ``temporal.md`` into `out_dir`.

    Raises:
        ConfigError: Nothing to score, a super-resolution model, or a report exists and
            `overwrite` is False.
        FileReadError: A photo or video cannot be read.
    """
    out = Path(out_dir)
    if content is None and not videos:
        raise ConfigError("nothing to score: give photos (--content with --moves) or --video")
    if not overwrite:
        for name in TEMPORAL_FILES:
            if (out / name).exists():
                raise OutputExistsError(
                    f"{out / name} exists; pass --overwrite or choose another output folder"
                )
    photos = find_images(content) if content is not None and Path(content).is_dir() else []
    if content is not None and Path(content).is_file():
        photos = [Path(content)]
    if content is not None and not photos:
        raise ConfigError(f"--content {content}: no photos found")
    stylizer = load(model, device=device, style=model_style)
    if stylizer.task != "style":
        raise ConfigError(
            f"{model} is a super-resolution model: the temporal metrics score style models"
        )

    def run(x: Tensor) -> Tensor:
        return stylizer.stylize_batch(x)

    rows: list[TemporalRow] = []
    for path in tqdm(photos, desc="camera moves", unit="photo", disable=not progress):
        photo = load_image_tensor(path, size=2 * max(size))
        for clip in camera_moves(photo, size=size, frames=frames, moves=moves):
            score = score_clip(run, clip)
            rows.append(
                TemporalRow(path.name, clip.name, "model", score.input_error, score.output_error)
            )
    strength = DEFAULT_STRENGTH if temporal is None else temporal
    for video in tqdm(list(videos), desc="videos", unit="video", disable=not progress):
        for method, blend in (("model", None), (f"model --temporal {strength:g}", strength)):
            score, per_frame, _ = score_video(
                run, video, temporal=blend, max_frames=max_video_frames
            )
            rows.append(
                TemporalRow(
                    Path(video).name,
                    "video",
                    method,
                    score.input_error,
                    score.output_error,
                    per_frame,
                )
            )
    report = TemporalReport(str(model), rows, size, frames)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "temporal.json", report.to_json())
    write_text(out / "temporal.md", report.markdown())
    return report

"""Training-step speed: the reference loop against stylenet's step, in one process.

The reference is pytorch/examples' fast_neural_style recipe: the same Johnson transform network,
fp32, eager, and two full VGG-16 passes (to relu4_3) per step, one over the output and one over
the photos, MSE on relu2_2 and on the Gram matrices of relu1_2…relu4_3, Adam.

stylenet's steps are built from the Hydra config exactly as ``stylenet-train`` builds them
(``configs/train.yaml`` composed with each variant's overrides, then the ``module`` node
instantiated), and timed without Lightning: one call of `StyleTransferModule.train_terms`,
backward, optimizer step. Variants run interleaved (round-robin, ``--rounds`` times) on the same
in-memory batch, so a machine that slows down mid-run slows every variant alike; each cell is the
median over rounds, and ×ref is its time over the reference's in the same table.

Then, once each: a breakdown of one eager step (transform forward, VGG + loss forward, backward,
optimizer) for the reference and stylenet, the data loader (decode + resize per photo and batches
per second at 0 and N workers), and the Lightning overhead (Trainer.fit per step, from the
difference of two run lengths, against the bare step).

    python scripts/bench_train.py                          # CPU: batch 4, 256²
    python scripts/bench_train.py --device cuda --batch 4 16
    python scripts/bench_train.py --size 128 --rounds 2 --skip lightning data
    python scripts/bench_train.py --task superres --device cuda --batch 4 16   # Sec. 4.2, x4

``--task superres`` times the super-resolution step instead (``task=superres scale=4``, the
low-res inputs degraded once before timing, as the loader workers do): the perceptual model
eager fp32 is the reference row, against the pixel-loss baseline and the trainer preset; the
breakdown, FLOP, Lightning and whole-run sections are the style task's only.

Weights: ``--vgg`` or $STYLENET_VGG16_WEIGHTS (the real ones; speed does not depend on them,
``--vgg random`` works too). Photos: ``--photos`` (default ../shared/data/coco-mini if present).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenet.io.images import find_images
from stylenet.losses import VGG16Features
from stylenet.losses import functional as LF
from stylenet.models import TransformerNet

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

# The video-stability terms (README, "Video without flicker"): one more transform-network pass
# each; the compound motion term covers noise too.
STABILITY = {
    "+ motion term (compound)": ["loss.motion_weight=1000", "loss.motion_noise=0.02"],
    "+ noise and motion terms": ["loss.motion_weight=1000", "loss.noise_weight=1000"],
}
# name -> overrides of configs/train.yaml (on top of --overrides); "ref" is the reference loop.
CPU_VARIANTS: dict[str, list[str] | None] = {
    "reference (pytorch/examples recipe)": None,
    "stylenet eager fp32": ["trainer=default", "train.compile=false"],
    "stylenet compiled fp32": ["trainer=cpu", "trainer.precision=32-true"],
    "stylenet eager bf16-mixed": ["trainer=default", "trainer.precision=bf16-mixed"],
    "stylenet trainer=cpu (compiled, precision by the probe)": ["trainer=cpu"],
    **{
        f"stylenet eager fp32 {k}": ["trainer=default", "train.compile=false", *v]
        for k, v in STABILITY.items()
    },
}
CUDA_VARIANTS: dict[str, list[str] | None] = {
    "reference (pytorch/examples recipe)": None,
    "stylenet eager fp32": ["trainer=default", "train.compile=false"],
    "stylenet trainer=gpu (mixed, channels_last, compiled)": ["trainer=gpu"],
    **{f"stylenet trainer=gpu {k}": ["trainer=gpu", *v] for k, v in STABILITY.items()},
}
# task=superres: the first row is the reference (×ref); no external peer loop.
EAGER = ["trainer=default", "train.compile=false"]
SUPERRES_VARIANTS: dict[str, dict[str, list[str] | None]] = {
    "cpu": {
        "perceptual (relu2_2 + TV) eager fp32": EAGER,
        "pixel loss eager fp32": ["loss=pixel", *EAGER],
        "perceptual trainer=cpu (compiled, precision by the probe)": ["trainer=cpu"],
        "pixel loss trainer=cpu": ["loss=pixel", "trainer=cpu"],
    },
    "cuda": {
        "perceptual (relu2_2 + TV) eager fp32": EAGER,
        "pixel loss eager fp32": ["loss=pixel", *EAGER],
        "perceptual trainer=gpu (mixed, channels_last, compiled)": ["trainer=gpu"],
        "pixel loss trainer=gpu": ["loss=pixel", "trainer=gpu"],
    },
}


class Step:
    """One training step: `run(images)` does forward, backward and the optimizer step.

    `parts(images)` does the same with the phases timed separately (synchronizing after each).
    """

    def __init__(
        self,
        net: nn.Module,
        forward: Callable[[Tensor], Tensor],
        loss: Callable[[Tensor, Tensor], Tensor],
        optimizer: torch.optim.Optimizer,
        autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
        full: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.net, self.forward, self.loss, self.optimizer = net, forward, loss, optimizer
        self.autocast = autocast
        self.full = full  # forward + loss in one call (the compiled path); None: compose them

    def run(self, images: Tensor) -> float:
        with self.autocast():
            total = self.full(images) if self.full else self.loss(self.forward(images), images)
        total.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(total.detach())

    def parts(self, images: Tensor, sync: Callable[[], None]) -> dict[str, float]:
        times: dict[str, float] = {}
        start = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal start
            sync()
            now = time.perf_counter()
            times[name] = now - start
            start = now

        with self.autocast():
            output = self.forward(images)
            lap("transform forward")
            total = self.loss(output, images)
            lap("VGG + loss forward")
        total.backward()
        lap("backward")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        lap("optimizer")
        return times


def reference_step(vgg: str | None, style: Tensor, device: torch.device) -> Step:
    """pytorch/examples fast_neural_style's step: two full VGG passes, MSE losses, fp32 eager.
    (Its 0-255 scaling and weights change the numbers, not the work.)"""
    torch.manual_seed(0)
    net = TransformerNet().to(device)
    features = VGG16Features(STYLE_LAYERS, weights=vgg).to(device)
    with torch.no_grad():
        grams = [LF.gram_matrix(f) for f in features(style.to(device)).values()]

    def loss(output: Tensor, images: Tensor) -> Tensor:
        out_feats, photo_feats = features(output), features(images)  # both to relu4_3
        content = F.mse_loss(out_feats["relu2_2"], photo_feats["relu2_2"])
        style_loss = sum(
            F.mse_loss(LF.gram_matrix(f), g.expand(f.shape[0], -1, -1))
            for f, g in zip(out_feats.values(), grams, strict=True)
        )
        return 1e5 * content + 1e10 * style_loss

    return Step(net, net, loss, torch.optim.Adam(net.parameters(), lr=1e-3))


def stylenet_step(overrides: list[str], device: torch.device) -> Step:
    """The step `stylenet-train` runs for these overrides (its module, optimizer and
    precision), without Lightning."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from stylenet import resolvers
    from stylenet.training.style import StyleTransferModule

    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_module("stylenet.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(0)
    module: StyleTransferModule = instantiate(cfg.module).to(device)
    module.train()
    optimizer = instantiate(cfg.optimizer)(module.net.parameters())
    precision = str(cfg.trainer.precision)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)

    def autocast() -> AbstractContextManager[Any]:
        if dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    def loss(output: Tensor, images: Tensor) -> Tensor:
        return module.loss(output, images)["total"]

    def full(images: Tensor) -> Tensor:
        return module.train_terms(images, images)["total"]

    if cfg.task.name == "superres":
        from stylenet.models.degradation import degrade

        lowres: dict[int, Tensor] = {}  # made once per batch, as the loader workers do

        def full(images: Tensor) -> Tensor:
            if images.data_ptr() not in lowres:
                lowres[images.data_ptr()] = degrade(images, int(cfg.scale))
            return module.train_terms(lowres[images.data_ptr()], images)["total"]

    # fp16 needs a GradScaler in real training; its cost is one multiply and an inf check.
    return Step(module.net, module.net, loss, optimizer, autocast, full)


def compose_overrides(style: Path, vgg: str | None, extra: list[str]) -> list[str]:
    pixel = "loss=pixel" in extra  # the pixel loss builds no VGG
    return [
        f"style.image={style}",
        "data.root=.",
        *([] if pixel else [f"loss.vgg.weights={vgg or 'null'}"]),
        "logger=none",
        f"paths.output_dir={tempfile.gettempdir()}/stylenet-bench-train",
        *extra,
    ]


def batch(photos: list[Path], n: int, size: int) -> Tensor:
    """n photos resized and cropped as for training (random pixels if there are none)."""
    if not photos:
        return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    from stylenet.training.data import PhotoFolder

    data = PhotoFolder(
        photos[:n] * (n // max(1, len(photos[:n])) + 1), image_size=size, train=False
    )
    return torch.stack([data[i] for i in range(n)])


def timed_rounds(
    steps: dict[str, Step], images: Tensor, *, rounds: int, per_round: int, sync: Callable
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds per step of each variant in each round, and the first (warm-up) call's time."""
    first: dict[str, float] = {}
    for name, step in steps.items():  # warm-up: compiles, allocator, kernel selection
        start = time.perf_counter()
        step.run(images)
        sync()
        first[name] = time.perf_counter() - start
        step.run(images)
        sync()
    per_step: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(per_round):
                step.run(images)
            sync()
            per_step[name].append((time.perf_counter() - start) / per_round)
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return per_step, first


def bench_steps(
    args: argparse.Namespace, device: torch.device, style: Path, photos: list[Path]
) -> float:
    """The step tables; returns the reference's s/step at the first batch size."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    variants = CUDA_VARIANTS if device.type == "cuda" else CPU_VARIANTS
    task: list[str] = []
    if args.task == "superres":
        variants = SUPERRES_VARIANTS[device.type]
        task = ["task=superres", f"scale={args.scale}"]
    if args.only:
        reference = next(iter(variants))  # the reference row stays
        variants = {
            k: v for k, v in variants.items() if k == reference or any(w in k for w in args.only)
        }
    from stylenet.io.images import load_image_tensor

    style_tensor = load_image_tensor(style, size=args.size * 2)
    first_ref = 0.0
    for b in args.batch:
        images = batch(photos, b, args.size).to(device)
        steps = {
            name: reference_step(args.vgg, style_tensor, device)
            if extra is None
            else stylenet_step(
                compose_overrides(style, args.vgg, [*task, *args.overrides, *extra]), device
            )
            for name, extra in variants.items()
        }
        per_step, first = timed_rounds(
            steps, images, rounds=args.rounds, per_round=args.steps, sync=sync
        )
        ref = statistics.median(next(iter(per_step.values())))
        first_ref = first_ref or ref
        print(
            f"\n### {args.task}{f' x{args.scale}' if task else ''}, {device.type}, batch {b}, "
            f"{args.size}², median of {args.rounds} rounds "
            f"× {args.steps} steps\n"
        )
        print("| step | s/step | images/s | ×ref | first step (compile) |")
        print("|---|---|---|---|---|")
        for name, times in per_step.items():
            sec = statistics.median(times)
            print(
                f"| {name} | {sec:.3f} | {b / sec:.2f} | ×{sec / ref:.2f} | {first[name]:.1f} s |"
            )
        if "breakdown" not in args.skip and not task:
            print(f"\nBreakdown of one eager step, batch {b} (mean of {args.steps} steps, s):\n")
            eager = {k: s for k, s in steps.items() if s.full is None or "eager" in k}
            rows: dict[str, dict[str, float]] = {}
            for name, step in eager.items():
                samples = [step.parts(images, sync) for _ in range(args.steps)]
                rows[name] = {k: statistics.mean(s[k] for s in samples) for k in samples[0]}
            phases = list(next(iter(rows.values())))
            print(f"| step | {' | '.join(phases)} |")
            print("|---|" + "---|" * len(phases))
            for name, row in rows.items():
                print(f"| {name} | {' | '.join(f'{row[p]:.3f}' for p in phases)} |")
        del steps
        sys.stdout.flush()
    return first_ref


def bench_data(args: argparse.Namespace, photos: list[Path]) -> float | None:
    """Decode + resize + crop per photo, and the loader's images/s at 0 and N workers."""
    from torch.utils.data import DataLoader

    from stylenet.training.data import PhotoFolder

    if not photos:
        print("\n(no photos: data loader not measured; give --photos DIR)")
        return None
    n = min(len(photos), args.photos_n)
    data = PhotoFolder(photos[:n], image_size=args.size, train=True)
    print(f"\n### Data: {n} photos, {args.size}² crops\n")
    print("| photos | decode + resize + crop, one process |")
    print("|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        # The same photos at COCO train2014's typical 640×480 (JPEG decoding costs by pixels).
        from PIL import Image

        coco = []
        for i, path in enumerate(photos[:n]):
            with Image.open(path) as img:
                big = img.convert("RGB").resize((640, 480), Image.Resampling.BICUBIC)
            coco.append(Path(tmp) / f"{i}.jpg")
            big.save(coco[-1], quality=90)
        for label, files in (
            (
                f"as given ({statistics.mean(_megapixels(p) for p in photos[:n]):.2f} MP)",
                photos[:n],
            ),
            ("resized to 640×480 (COCO-size, 0.31 MP)", coco),
        ):
            folder = PhotoFolder(files, image_size=args.size, train=True)
            start = time.perf_counter()
            for i in range(n):
                folder[i]
            per_photo = (time.perf_counter() - start) / n
            print(f"| {label} | {1000 * per_photo:.1f} ms ({1 / per_photo:.0f} photos/s) |")
        coco_rate = 1 / per_photo  # the COCO-size row, printed last
    print()
    print("| loader | images/s |")
    print("|---|---|")
    rate = 0.0
    for workers in sorted({0, args.workers}):
        loader = DataLoader(
            data,
            batch_size=4,
            shuffle=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=True,
        )
        it: Iterator[Tensor] = iter(loader)
        next(it)  # workers started
        start = time.perf_counter()
        count = 0
        for images in it:
            count += images.shape[0]
            if count >= n:
                break
        rate = count / (time.perf_counter() - start)
        print(f"| DataLoader, {workers} workers | {rate:.1f} |")
        del it, loader
    return coco_rate


def _megapixels(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as img:
        return img.width * img.height / 1e6


def bench_lightning(args: argparse.Namespace, device: torch.device, style: Path) -> None:
    """Per-step cost of `Trainer.fit` (the difference of two run lengths, so start-up cancels)
    against the bare eager step, on the same in-memory photos."""
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader, Dataset

    class Repeat(Dataset[Tensor]):
        def __init__(self, images: Tensor) -> None:
            self.images = images

        def __len__(self) -> int:
            return 10_000

        def __getitem__(self, i: int) -> Tensor:
            return self.images[i % len(self.images)]

    b = args.batch[0]
    images = torch.rand(b, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    overrides = compose_overrides(
        style, args.vgg, [*args.overrides, "trainer=default", "train.compile=false"]
    )
    short, long = args.lightning_steps
    fit_times = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (short, long):
            from hydra import compose, initialize_config_module
            from hydra.core.global_hydra import GlobalHydra

            GlobalHydra.instance().clear()
            with initialize_config_module("stylenet.configs", version_base="1.3"):
                cfg = compose("train", overrides=overrides)
            module = instantiate(cfg.module)
            trainer = pl.Trainer(
                accelerator=device.type,
                devices=1,
                max_steps=n,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                limit_val_batches=0,
                default_root_dir=tmp,
            )
            loader = DataLoader(Repeat(images), batch_size=b, num_workers=0)
            start = time.perf_counter()
            trainer.fit(module, train_dataloaders=loader)
            fit_times.append(time.perf_counter() - start)
    fit_per_step = (fit_times[1] - fit_times[0]) / (long - short)
    bare = stylenet_step(overrides, device)
    x = images.to(device)
    bare.run(x)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for _ in range(long - short):
        bare.run(x)
    sync()
    bare_per_step = (time.perf_counter() - start) / (long - short)
    print(f"\n### Lightning overhead, {device.type}, batch {b}, {args.size}², eager fp32\n")
    print("| loop | s/step | ×bare |")
    print("|---|---|---|")
    print(f"| bare step (forward, backward, Adam) | {bare_per_step:.3f} | ×1.00 |")
    print(
        f"| Trainer.fit, ({fit_times[1]:.1f} s − {fit_times[0]:.1f} s) / {long - short} steps "
        f"| {fit_per_step:.3f} | ×{fit_per_step / bare_per_step:.2f} |"
    )


# NVIDIA H100 SXM dense tensor-core peaks (datasheet): bf16/fp16 989 TFLOP/s, tf32 495.
H100_PEAK = {"bf16": 989e12, "tf32": 495e12}
H100_UTILIZATION = 0.35  # an assumption for a conv net of this size, not a measurement


def bench_flops(args: argparse.Namespace, style: Path, coco_photos_per_s: float | None) -> None:
    """FLOPs of one training step (torch's FlopCounterMode on CPU) and the H100 step time they
    imply at an assumed utilization, against what the loader measured here could feed."""
    from torch.utils.flop_counter import FlopCounterMode

    from stylenet.io.images import load_image_tensor

    b = args.batch[0]
    images = torch.rand(b, 3, args.size, args.size)
    style_tensor = load_image_tensor(style, size=args.size * 2)
    cpu = torch.device("cpu")
    steps = {
        "reference": reference_step(args.vgg, style_tensor, cpu),
        "stylenet": stylenet_step(
            compose_overrides(style, args.vgg, [*args.overrides, "train.compile=false"]), cpu
        ),
    }
    print(f"\n### FLOPs per step (batch {b}, {args.size}²) and an H100 estimate\n")
    print(
        f"Assumes {H100_UTILIZATION:.0%} of the H100's dense peak (bf16 989, tf32 495 TFLOP/s).\n"
    )
    print("| step | GFLOP/step | H100 bf16 ms/step | images/s | H100 tf32 ms/step |")
    print("|---|---|---|---|---|")
    demand = 0.0
    for name, step in steps.items():
        counter = FlopCounterMode(display=False)
        with counter:
            step.run(images)
        flops = counter.get_total_flops()
        t16 = flops / (H100_PEAK["bf16"] * H100_UTILIZATION)
        t32 = flops / (H100_PEAK["tf32"] * H100_UTILIZATION)
        demand = max(demand, b / t16)
        print(f"| {name} | {flops / 1e9:.0f} | {1e3 * t16:.2f} | {b / t16:.0f} | {1e3 * t32:.2f} |")
    if coco_photos_per_s:
        print(
            f"\nOne core here decodes, resizes and crops {coco_photos_per_s:.0f} COCO-size "
            f"photos/s; the fastest step above wants {demand:.0f} images/s: about "
            f"{demand / coco_photos_per_s:.0f} loader workers (cores) per GPU."
        )


def bench_whole_run(args: argparse.Namespace, style: Path, photos_dir: Path, ref_s: float) -> None:
    """`stylenet-train` as a user runs it (trainer=cpu), at two run lengths: the difference
    over the extra steps is the per-step time with start-up, compile and validation cancelled."""
    short, long = args.whole_run
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (short, long):
            cmd = [
                sys.executable,
                "-m",
                "stylenet.cli.train",
                f"style.image={style}",
                f"data.root={photos_dir}",
                *(["trainer=cpu"] if "cuda" not in args.device else ["trainer=gpu"]),
                f"data.image_size={args.size}",
                f"data.batch_size={args.batch[0]}",
                f"trainer.max_steps={n}",
                "trainer.val_check_interval=100000",
                "trainer.enable_progress_bar=false",
                "logger=none",
                "data.max_val_images=4",
                f"hydra.run.dir={tmp}/run{n}",
                *args.overrides,
            ]
            if args.vgg:
                cmd.append(f"loss.vgg.weights={args.vgg}")
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    per_step = (times[1] - times[0]) / (long - short)
    print(f"\n### Whole stylenet-train run, batch {args.batch[0]}, {args.size}²\n")
    print("| run | s/step | ×ref |")
    print("|---|---|---|")
    print(f"| reference loop (table above) | {ref_s:.3f} | ×1.00 |")
    print(
        f"| stylenet-train, ({times[1]:.1f} s − {times[0]:.1f} s) / {long - short} steps "
        f"| {per_step:.3f} | ×{per_step / ref_s:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--task", choices=["style", "superres"], default="style")
    parser.add_argument("--scale", type=int, default=4, help="--task superres: 4 or 8")
    parser.add_argument("--batch", type=int, nargs="+", default=[4])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vgg", default=os.environ.get("STYLENET_VGG16_WEIGHTS"))
    parser.add_argument("--style", type=Path, default=SHARED / "styles" / "mosaic.jpg")
    parser.add_argument("--photos", type=Path, default=SHARED / "coco-mini")
    parser.add_argument("--photos-n", type=int, default=64, help="photos for the data bench")
    parser.add_argument("--workers", type=int, default=2, help="loader workers to measure")
    parser.add_argument("--lightning-steps", type=int, nargs=2, default=[2, 6])
    parser.add_argument("--whole-run", type=int, nargs=2, default=[4, 12])
    parser.add_argument(
        "--only", nargs="*", default=[], help="keep the step rows whose name has one of these words"
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["breakdown", "data", "lightning", "flops", "whole-run"],
    )
    parser.add_argument("--overrides", nargs="*", default=[], help="more stylenet-train overrides")
    args = parser.parse_args()
    device = torch.device(args.device)
    photos = find_images(args.photos) if args.photos.is_dir() else []
    style = args.style
    if not style.is_file():
        from PIL import Image

        style = Path(tempfile.mkdtemp()) / "style.png"
        Image.effect_noise((args.size, args.size), 64).convert("RGB").save(style)

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"$ python scripts/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(
        f"stylenet {git}, torch {torch.__version__}, python {platform.python_version()}, "
        f"{gpu or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} threads; VGG weights {args.vgg or 'default lookup'}"
    )
    ref_s = bench_steps(args, device, style, photos)
    if args.task != "style":
        return
    loader = bench_data(args, photos) if "data" not in args.skip else None
    if "flops" not in args.skip:
        bench_flops(args, style, loader)
    if "lightning" not in args.skip:
        bench_lightning(args, device, style)
    if "whole-run" not in args.skip and photos:
        bench_whole_run(args, style, args.photos, ref_s)


if __name__ == "__main__":
    main()

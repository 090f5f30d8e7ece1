"""One network for N styles against N one-style networks, same recipe (issue 10's acceptance).

Trains, with ``stylenet-train experiment=cpu_quick`` (128² crops, batch 4, Adam 1e-3):
- one model per style for S steps;
- one multi-style model (``styles=[...]``) for N×S steps, so each style gets S steps;

then prints each style's final held-out style and content loss (the validation photos held out
of ``--photos``) for both, their ratio, the parameter counts and the wall times. With ``--add
STYLE``, also a one-style model of STYLE for S steps against adding STYLE to the multi-style
model (``init_from``, only its γ and β trained) for S/2 steps.

    python scripts/compare_multistyle.py --steps 300 --out compare/
    python scripts/compare_multistyle.py --table-only --out compare/   # the table of earlier runs

Needs the real VGG-16 weights ($STYLENET_VGG16_WEIGHTS) and the paintings ($STYLENET_STYLE_DIR).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
STYLES = ["mosaic", "candy", "udnie", "starry_night"]


def train(out: Path, name: str, steps: int, extra: list[str], photos: Path) -> float:
    """One stylenet-train run into out/name (skipped if its model exists); wall seconds."""
    run = out / name
    if (run / "model.pt").is_file():
        return float((run / "seconds.txt").read_text()) if (run / "seconds.txt").is_file() else 0
    cmd = [
        sys.executable, "-m", "stylenet.cli.train", "experiment=cpu_quick",
        f"data.root={photos}", f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={max(1, steps // 4)}",
        f"callbacks.model_checkpoint.every_n_train_steps={max(1, steps // 4)}",
        "trainer.enable_progress_bar=false", "logger=csv", f"hydra.run.dir={run}", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    (run / "seconds.txt").write_text(f"{seconds:.1f}")
    return seconds


def final(run: Path, key: str) -> float:
    with open(run / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get(key)]
    return float(rows[-1][key])


def parameters(run: Path) -> int:
    state = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    return sum(v.numel() for v in state.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="S: steps per style")
    parser.add_argument("--styles", nargs="+", default=STYLES)
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared/data/coco-mini")
    parser.add_argument("--out", type=Path, default=Path("compare_multistyle"))
    parser.add_argument(
        "--style-scale",
        nargs="*",
        default=[],
        metavar="STYLE=F",
        help="a per-style factor on the style weight in the multi-style run (style_scale); "
        "its table entry is divided by F, so the losses compare with the one-style models'",
    )
    parser.add_argument("--add", help="a style to add to the multi-style model afterwards")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    s, n = args.steps, len(args.styles)
    scales = {k: float(v) for k, v in (item.split("=", 1) for item in args.style_scale)}
    entries = [
        f"{{name:{st},style_scale:{scales[st]}}}" if st in scales else st for st in args.styles
    ]
    times: dict[str, float] = {}
    if not args.table_only:
        for style in args.styles:
            times[style] = train(args.out, f"single-{style}", s, [f"style={style}"], args.photos)
        multi = [f"styles=[{','.join(entries)}]"]
        times["multi"] = train(args.out, "multi", n * s, multi, args.photos)
        if args.add:
            added = [
                f"styles=[{','.join([*entries, args.add])}]",
                f"init_from={args.out / 'multi' / 'model.pt'}",
            ]
            times[f"single-{args.add}"] = train(
                args.out, f"single-{args.add}", s, [f"style={args.add}"], args.photos
            )
            times[f"added-{args.add}"] = train(args.out, "added", s // 2, added, args.photos)
    multi_run = args.out / "multi"
    command = f"python scripts/compare_multistyle.py --steps {s} --styles {' '.join(args.styles)}"
    print(f"$ {command}" + (f" --style-scale {' '.join(args.style_scale)}" if scales else ""))
    print(f"\n{n} one-style models × {s} steps vs one {n}-style model × {n * s} steps")
    print("(experiment=cpu_quick: 128² crops, batch 4); final held-out losses, weighted by the")
    print("one-style recipe's loss weights (a multi-style style_scale F is divided out)\n")
    print("| style | style loss: one-style | multi | ×one-style | content: one-style | multi | × |")
    print("|---|---|---|---|---|---|---|")
    for style in args.styles:
        run = args.out / f"single-{style}"
        s1 = final(run, "val/style")
        s2 = final(multi_run, f"val/{style}/style") / scales.get(style, 1.0)
        c1, c2 = final(run, "val/content"), final(multi_run, f"val/{style}/content")
        cells = [f"{s1:.3f}", f"{s2:.3f}", f"×{s2 / s1:.2f}", f"{c1:.3f}", f"{c2:.3f}"]
        print(f"| {style} | {' | '.join(cells)} | ×{c2 / c1:.2f} |")
    singles = sum(parameters(args.out / f"single-{st}") for st in args.styles)
    print(
        f"\nparameters: {n} one-style models {singles:,}; the {n}-style model "
        f"{parameters(multi_run):,} (×{parameters(multi_run) / singles:.3f})"
    )
    if args.add and (args.out / "added" / "model.pt").is_file():
        s1 = final(args.out / f"single-{args.add}", "val/style")
        s2 = final(args.out / "added", f"val/{args.add}/style")
        print(
            f"\nadding {args.add} (its γ, β only, {s // 2} steps) vs a one-style model "
            f"({s} steps): held-out style loss {s2:.3f} vs {s1:.3f} (×{s2 / s1:.2f})"
        )
    if times:
        print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))


if __name__ == "__main__":
    main()

"""Load test of `stylenet-serve` on 127.0.0.1, against sequential in-process `Stylizer` calls on
the same backend in this process (the baseline), and batching on against off.

For each server setting (``--max-batch-size`` values, 1 = batching off), a server is started in a
subprocess on a free port of 127.0.0.1 (CPU, the default backend) and loaded by ``C`` client
threads (``--clients``) that each send JPEG photos one after another, ``--requests`` per client
in all, for at most ``--max-seconds``. Every answer is counted: an image (200), a 4xx, or lost
(5xx, timeout, connection error). Throughput is answers per second over the whole level; p50/p99
are per-request latencies. The baseline stylizes the same decoded photos one at a time with
``stylenet.load(model)`` (what a user's own loop would do), with no HTTP, JPEG decode or encode.

    python scripts/bench_serve.py                                # random-init Johnson net
    python scripts/bench_serve.py --model run/model.pt --sizes 512 --clients 16

This 2-core machine's throughput drifts by ±5% between runs of the same level, which is the size
of the server's overhead at 512²: ``--repeats R`` runs every level and the baseline R times and
reports medians, with the range of the level's ratios.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch
from PIL import Image

import stylenet
from stylenet.inference.model_file import save_model
from stylenet.models import TransformerNet

REPO = Path(__file__).resolve().parents[1]
CONTENT = REPO.parent / "shared" / "data" / "content"


@dataclass
class Level:
    """One load level's answers."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    refused: int = 0
    lost: int = 0

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else float("nan")

    @classmethod
    def pooled(cls, levels: list[Level]) -> Level:
        """Every answer of repeated runs of one level, over their summed seconds."""
        pooled = cls(seconds=sum(level.seconds for level in levels))
        for level in levels:
            pooled.latencies += level.latencies
            pooled.ok, pooled.refused = pooled.ok + level.ok, pooled.refused + level.refused
            pooled.lost += level.lost
        return pooled

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def photos(sizes: list[int], count: int) -> list[tuple[int, bytes, Image.Image]]:
    """`count` JPEG photos per size (the shared content photos cropped square, else noise)."""
    sources = sorted(CONTENT.glob("*.jpg")) if CONTENT.is_dir() else []
    made = []
    for size in sizes:
        for i in range(count):
            if sources:
                img = Image.open(sources[i % len(sources)]).convert("RGB")
                side = min(img.size)
                img = img.crop((0, 0, side, side)).resize((size, size), Image.Resampling.LANCZOS)
            else:
                img = Image.effect_noise((size, size), 60).convert("RGB")
            buffer = io.BytesIO()
            img.save(buffer, format="JPEG", quality=92)
            made.append((size, buffer.getvalue(), img))
    return made


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`stylenet-serve` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, model: Path, max_batch_size: int, batch_timeout: float, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "stylenet.cli.serve", str(model), "--port", str(self.port),
            "--accelerator", "cpu", "--max-batch-size", str(max_batch_size),
            "--batch-timeout", str(batch_timeout), "--timeout", "600",
        ]  # fmt: skip
        self.log = log.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).text == "ok":
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        self.__exit__()
        raise SystemExit(f"the server did not start: see {self.log.name}")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def load(url: str, bodies: list[bytes], clients: int, max_seconds: float) -> Level:
    """`clients` threads send `bodies` (shared out in order) one request at a time each."""
    level = Level()
    deadline = time.monotonic() + max_seconds

    def client(k: int) -> list[tuple[int, float]]:
        done = []
        with httpx.Client(timeout=600) as session:
            for body in bodies[k::clients]:
                if time.monotonic() > deadline:
                    break
                start = time.perf_counter()
                try:
                    status = session.post(f"{url}/stylize", content=body).status_code
                except httpx.HTTPError:
                    status = 0
                done.append((status, time.perf_counter() - start))
        return done

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [r for batch in pool.map(client, range(clients)) for r in batch]
    level.seconds = time.perf_counter() - start
    for status, seconds in results:
        if status == 200:
            level.ok += 1
            level.latencies.append(seconds)
        elif 400 <= status < 500:
            level.refused += 1
        else:
            level.lost += 1
    return level


def in_process(model: Path, images: list[Image.Image]) -> tuple[float, str]:
    """Photos per second of sequential `Stylizer` calls (after one warm-up per size)."""
    stylizer = stylenet.load(model, device="cpu")
    for size in {img.size for img in images}:
        stylizer(next(img for img in images if img.size == size))
    start = time.perf_counter()
    for img in images:
        stylizer(img)
    return len(images) / (time.perf_counter() - start), stylizer.backend.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model.pt (default: random-init Johnson net)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1, 4, 8], help="1: batching off"
    )
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    parser.add_argument("--requests", type=int, default=48, help="requests per level")
    parser.add_argument("--max-seconds", type=float, default=120, help="per level")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of every level and baseline (medians)"
    )
    args = parser.parse_args()
    os.environ.pop("STYLENET_BACKEND", None)  # the default backend, as a user gets it

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["STYLENET_CACHE"] = str(Path(tmp) / "cache")  # the server's too
        model = args.model
        if model is None:
            torch.manual_seed(0)
            model = save_model(TransformerNet(), Path(tmp) / "model.pt")
        print(
            f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
            f"{torch.__version__}; model {args.model or 'random-init Johnson net'}; "
            f"{args.requests} requests per level, batch timeout {args.batch_timeout} s\n"
        )
        per_size = {size: photos([size], args.requests) for size in args.sizes}
        # Sizes interleaved, so that concurrent requests differ in size.
        mixed = [p for same in zip(*per_size.values(), strict=True) for p in same]
        mixed = mixed[: args.requests]
        rates: dict[str, list[float]] = {}
        for _ in range(args.repeats):  # interleaved, so that a slow minute touches every size
            for name, work in [*((f"{s}²", w) for s, w in per_size.items()), ("mixed", mixed)]:
                rate, backend = in_process(model, [img for _, _, img in work[:16]])
                rates.setdefault(name, []).append(rate)
        base = {name: statistics.median(runs) for name, runs in rates.items()}
        print(
            f"in-process baseline ({backend}, sequential): "
            + ", ".join(f"{name} {rate:.2f} img/s" for name, rate in base.items())
            + "\n"
        )
        print(
            "| server batch | photos | clients | img/s | × in-process | p50 s | p99 s "
            "| 200 / 4xx / lost |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for batch in args.batch_sizes:
            with Server(model, batch, args.batch_timeout, Path(tmp) / f"server{batch}.log") as srv:
                loads = [*((f"{s}²", w) for s, w in per_size.items()), ("mixed", mixed)]
                for name, work in loads:
                    # One warm-up request per size: the first of a size pays ORT's planning.
                    for size in sorted({s for s, _, _ in work}):
                        body = next(b for s, b, _ in work if s == size)
                        httpx.post(f"{srv.url}/stylize", content=body, timeout=600)
                    for clients in args.clients:
                        runs = [
                            load(srv.url, [b for _, b, _ in work], clients, args.max_seconds)
                            for _ in range(args.repeats)
                        ]
                        level = Level.pooled(runs)
                        ratios = sorted(run.throughput / base[name] for run in runs)
                        spread = f" ({ratios[0]:.2f}–{ratios[-1]:.2f})" if len(runs) > 1 else ""
                        print(
                            f"| {'off' if batch == 1 else batch} | {name} | {clients} | "
                            f"{statistics.median(run.throughput for run in runs):.2f} | "
                            f"×{statistics.median(ratios):.2f}{spread} | "
                            f"{level.percentile(0.5):.2f} | {level.percentile(0.99):.2f} | "
                            f"{level.ok} / {level.refused} / {level.lost} |",
                            flush=True,
                        )


if __name__ == "__main__":
    main()

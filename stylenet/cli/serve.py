"""`stylenet-serve MODEL_OR_FOLDER ...`: an HTTP API that stylizes photos for many clients,
batching concurrent requests (LitServe; the ``serve`` extra).

    stylenet-serve outputs/train/mosaic/<run>/model.pt
    curl --data-binary @photo.jpg -o styled.jpg 'http://127.0.0.1:8000/stylize?strength=0.8'
    curl -F image=@photo.jpg -F style=candy -o styled.jpg http://127.0.0.1:8000/stylize

See `stylenet.inference.server` for the API and README, "Serving", for measured throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import sys
import tempfile
from pathlib import Path

from stylenet.cli.common import (
    EPILOG,
    EXIT_OK,
    ArgumentParser,
    add_serving_arguments,
    at_least,
    run,
)
from stylenet.errors import ConfigError
from stylenet.inference.serving import find_models

PROG = "stylenet-serve"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # as stylenet.inference.server (not imported yet)
INSTALL_HINT = "pip install 'stylenet[serve]'"


def build_parser() -> ArgumentParser:
    from stylenet.inference.server import BATCH_TIMEOUT, MAX_BATCH_SIZE, MAX_BYTES

    p = ArgumentParser(
        prog=PROG,
        description="An HTTP API that stylizes photos, batching concurrent requests.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Needs the serve extra: {INSTALL_HINT}\n" + EPILOG,
    )
    add_serving_arguments(p, port=8000)
    p.add_argument(
        "--accelerator",
        choices=["auto", "cpu", "cuda", "mps"],
        default="auto",
        help="where the workers run (default: a GPU if there is one)",
    )
    p.add_argument(
        "--devices", default="auto", help="GPUs to use: a count, or auto (all) (default auto)"
    )
    p.add_argument(
        "--workers-per-device", type=at_least(1), default=1, metavar="N", help="default 1"
    )
    p.add_argument(
        "--max-batch-size",
        type=at_least(1),
        default=MAX_BATCH_SIZE,
        metavar="N",
        help=f"requests one forward pass may take; 1: no batching (default {MAX_BATCH_SIZE})",
    )
    p.add_argument(
        "--batch-timeout",
        type=float,
        default=BATCH_TIMEOUT,
        metavar="SECONDS",
        help=f"how long a worker waits for a batch to fill (default {BATCH_TIMEOUT})",
    )
    p.add_argument(
        "--max-bytes",
        type=at_least(1024),
        default=MAX_BYTES,
        metavar="N",
        help=f"refuse request bodies over N bytes (default {MAX_BYTES}, 64 MiB)",
    )
    p.add_argument(
        "--metrics",
        action="store_true",
        help="Prometheus metrics on GET /metrics (requests by status, latency, batch sizes; "
        "needs prometheus-client, in the serve extra)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120,
        metavar="SECONDS",
        help="answer 504 to a request waiting longer than this (default 120)",
    )
    return p


def _serve(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("litserve") is None:
        raise ConfigError(f"{PROG} needs LitServe: {INSTALL_HINT}")
    if not 0 <= args.batch_timeout < args.timeout:
        raise ConfigError(f"--batch-timeout must be in [0, --timeout), got {args.batch_timeout}")
    devices = args.devices if args.devices == "auto" else _count(args.devices)
    files = find_models(args.models)
    if args.metrics and importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError(f"--metrics needs prometheus-client: {INSTALL_HINT}")
    with contextlib.ExitStack() as stack:
        if args.metrics and not os.environ.get(METRICS_DIR_ENV):
            # prometheus_client's multiprocess files: the workers' metrics, removed at the end.
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="stylenet-metrics-"))
            os.environ[METRICS_DIR_ENV] = folder
        return _run_server(args, files, devices)


def _run_server(args: argparse.Namespace, files: dict[str, Path], devices: int | str) -> int:
    from stylenet.inference.server import build_server

    server = build_server(
        files,
        accelerator=args.accelerator,
        devices=devices,
        workers_per_device=args.workers_per_device,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        max_pixels=args.max_pixels,
        max_bytes=args.max_bytes,
        tile=args.tile,
        timeout=args.timeout,
        metrics=args.metrics,
    )
    print(f"{PROG}: {len(files)} model(s): {', '.join(files)}", flush=True)
    # LitServe shuts its workers down on Ctrl-C only; a plain `kill` (SIGTERM: systemd, docker,
    # a job scheduler) would end this process and leave them running. Make it a Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    server.run(host=args.host, port=args.port, generate_client_file=False)
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--devices must be a positive count or auto, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _serve(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

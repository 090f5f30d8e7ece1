"""OmegaConf resolvers the training configs use (registered by `register`, which
``stylenet-train`` and `stylenet.training.run.train` call before a config is resolved).

- ``${stylenet.mixed_precision:}``: ``bf16-mixed`` on a GPU with bfloat16 (Ampere or newer),
  else ``16-mixed`` (fp16 with Lightning's loss scaling).
- ``${stylenet.cpu_precision:}``: ``bf16-mixed`` if this CPU runs a bf16 convolution's forward and
  backward clearly faster than fp32 (a probe of about two seconds, once per process), else
  ``32-true``. CPUs differ: scripts/bench_train.py measured bf16 autocast at 0.56× the fp32 step
  on an AMD EPYC with AVX512-BF16, but 1.4× on an Intel Xeon with AMX (issue 9).
- ``${stylenet.run_name:${run_name}}``: the run's folder name: ``run_name`` when given (a stable
  name, so a restarted job finds its own checkpoints), else the time this process started, to
  the microsecond (a fresh folder per run, never reused).
"""

from __future__ import annotations

import datetime
import functools
import logging
import time
from collections.abc import Callable

from omegaconf import OmegaConf


def mixed_precision() -> str:
    import torch  # here, not at import: stylenet-train checks its inputs before loading torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "16-mixed"


log = logging.getLogger(__name__)

# bf16 is chosen when its probe takes at most this fraction of fp32's time. The probe reads high:
# on the 2-core EPYC where a whole bf16 step takes 0.52-0.58× fp32's, it gave 0.48-0.79; on the
# Xeon/AMX machine of issue 9, bf16 steps took 1.4×.
BF16_MAX_RATIO = 0.9
# Rounds of the probe, fp32 and bf16 taking turns, on one thread. The fastest round of each is
# compared: another job on the machine only ever slows a round down. On a 2-core CPU whose steps
# run 0.52-0.58× in bf16, one two-thread round each gave ratios from 0.39 to 1.18 while another
# job ran (and decided differently for runs of one command); three one-thread rounds gave
# 0.48-0.68 under the same load, in 0.9 s (issue 11's note).
PROBE_ROUNDS = 3


def _probe_seconds(dtype_name: str) -> float:
    """Fastest seconds of a 3×3 conv's forward and backward (64 → 64 channels, 4 × 64²), the bulk
    of a training step, in fp32 or under bf16 autocast, on one thread (threads that wait for
    each other on a busy machine time the scheduler, not the kernels)."""
    import torch

    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(4, 64, 64, 64, requires_grad=True)
    autocast = dtype_name == "bf16"
    times = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(5):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                y = conv(x)
            y.float().square().mean().backward()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return min(times[1:])  # the first call is a warm-up


@functools.cache
def cpu_precision(probe: Callable[[str], float] = _probe_seconds) -> str:
    try:
        rounds = [(probe("fp32"), probe("bf16")) for _ in range(PROBE_ROUNDS)]
    except RuntimeError as err:  # no bf16 kernels on this CPU
        log.info("trainer=cpu: bf16 unavailable (%s); training in fp32", err)
        return "32-true"
    ratio = min(bf16 for _, bf16 in rounds) / min(fp32 for fp32, _ in rounds)
    choice = "bf16-mixed" if ratio <= BF16_MAX_RATIO else "32-true"
    log.info(
        "trainer=cpu: a bf16 convolution takes %.2f× the fp32 time on this CPU: training in %s "
        "(trainer.precision=32-true or bf16-mixed forces one)",
        ratio,
        choice,
    )
    return choice


@functools.cache
def _started() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def run_name(name: str | None) -> str:
    if name is not None and not str(name).strip():
        raise ValueError("run_name is empty: give a name or leave it unset")
    return str(name) if name is not None else _started()


def register() -> None:
    """Register the resolvers (once; later calls do nothing)."""
    for name, resolver in (
        ("stylenet.mixed_precision", mixed_precision),
        ("stylenet.cpu_precision", cpu_precision),
        ("stylenet.run_name", run_name),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)

"""OmegaConf resolvers the training configs use (registered by `register`, which
``stylenet-train`` and `stylenet.training.run.train` call before a config is resolved).

- ``${stylenet.mixed_precision:}``: ``bf16-mixed`` on a GPU with bfloat16 (Ampere or newer),
  else ``16-mixed`` (fp16 with Lightning's loss scaling).
- ``${stylenet.run_name:${run_name}}``: the run's folder name: ``run_name`` when given (a stable
  name, so a restarted job finds its own checkpoints), else the time this process started, to
  the microsecond (a fresh folder per run, never reused).
"""

from __future__ import annotations

import datetime
import functools

from omegaconf import OmegaConf


def mixed_precision() -> str:
    import torch  # here, not at import: stylenet-train checks its inputs before loading torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "16-mixed"


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
        ("stylenet.run_name", run_name),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)

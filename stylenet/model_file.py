"""The exported model file (``model.pt``): architecture config + weights, no pickled code.

It is a plain ``torch.save`` of a dict of strings, numbers and tensors, loaded with
``torch.load(weights_only=True)``, so opening a model file never executes code from it::

    {"format": "stylenet.TransformerNet", "format_version": 1,
     "config": {"base_channels": 32, "num_residual_blocks": 5},
     "state_dict": {...}, "metadata": {"style_image": ..., "global_step": ..., ...}}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stylenet.fileio import atomic_write
from stylenet.models import TransformerConfig, TransformerNet

FORMAT = "stylenet.TransformerNet"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A file that is not a readable stylenet model."""


def save_model(
    net: TransformerNet, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write `net` as a self-describing model file (atomically: never a half-written file)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": net.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    return atomic_write(path, lambda fh: torch.save(payload, fh), overwrite=True)


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate the payload of a model file (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelFileError(
            f"{path} is not a stylenet model file (torch.load failed: {err})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(
            f"{path} is not a stylenet model file (expected format {FORMAT!r}); "
            "Lightning checkpoints (.ckpt) hold the model too: see `stylenet-stylize --help`"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model-file format version {payload['format_version']}, newer than this "
            f"stylenet understands ({FORMAT_VERSION}); upgrade stylenet"
        )
    return payload


def load_model(path: str | os.PathLike) -> TransformerNet:
    """Build the `TransformerNet` stored in a model file, in eval mode on the CPU."""
    payload = read_model_file(path)
    net = TransformerNet.from_config(TransformerConfig(**payload["config"]))
    net.load_state_dict(payload["state_dict"])
    return net.eval()

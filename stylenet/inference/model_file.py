"""Model files: what a file is (from its content, never its name), and the `TransformerNet` in it.

The exported model file (``model.pt``, written by `save_model`) holds the architecture config and
the weights, no pickled code; it is a plain ``torch.save`` of a dict of strings, numbers and
tensors, loaded with ``torch.load(weights_only=True)``::

    {"format": "stylenet.TransformerNet", "format_version": 1,
     "config": {"base_channels": 32, "num_residual_blocks": 5},
     "state_dict": {...}, "metadata": {"style_image": ..., "global_step": ..., ...}}

`detect_format` tells apart the files stylenet reads:

- ``"stylenet"``: a model file (``model.pt``);
- ``"lightning"``: a Lightning checkpoint of `stylenet.training.module` (state dict ``net.*``);
- ``"torchscript"``: an archive written by ``stylenet-export --format torchscript``;
- ``"onnx"``: a model written by ``stylenet-export --format onnx``.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from stylenet.errors import FileReadError
from stylenet.io.files import PICKLE_MAGIC, ZIP_MAGIC, atomic_write, torch_load
from stylenet.models import TransformerConfig, TransformerNet

FORMAT = "stylenet.TransformerNet"
FORMAT_VERSION = 1
FORMATS = ("stylenet", "lightning", "torchscript", "onnx")


class ModelFileError(FileReadError):
    """A file that is not a readable stylenet model (``.path``, ``.reason``)."""

    kind = "model file"


def save_model(
    net: TransformerNet, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None
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


def detect_format(path: str | os.PathLike[str]) -> str:
    """Which kind of model file `path` is, from its content: one of `FORMATS`.

    Raises:
        ModelFileError: Missing, a directory, or a file that is none of the supported formats.
    """
    return _inspect(Path(path))[0]


def open_model(
    path: str | os.PathLike[str],
) -> tuple[str, TransformerNet | None, dict[str, Any]]:
    """What `path` is and, for a model file or Lightning checkpoint, its `TransformerNet` (eval
    mode, CPU) and metadata (`read_metadata`); None and {} for an export (its description is
    `export_description`). The file is read once.

    Raises:
        ModelFileError: Not a format stylenet reads, or weights that do not fit the network.
    """
    path = Path(path)
    fmt, payload = _inspect(path)
    if fmt == "stylenet":
        config, weights = payload["config"], payload["state_dict"]
    elif fmt == "lightning":
        config, weights = _checkpoint_config(path, payload)
    else:
        return fmt, None, {}
    try:
        net = TransformerNet.from_config(TransformerConfig(**config))
        net.load_state_dict(weights)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(
            path, f"its weights do not fit TransformerNet({config}): {err}"
        ) from err
    return fmt, net.eval(), _torch_metadata(fmt, payload)


def load_model(path: str | os.PathLike[str]) -> TransformerNet:
    """The `TransformerNet` in a model file or Lightning checkpoint, in eval mode on the CPU.

    Raises:
        ModelFileError: Not a model file or checkpoint (an export, say), or its weights do not
            fit the network.
    """
    fmt, net, _ = open_model(path)
    if net is None:
        raise ModelFileError(
            Path(path),
            f"an exported {fmt} model; this needs the model.pt or the Lightning .ckpt it was "
            "exported from",
        )
    return net


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a model file, checkpoint or export records about its training (style image, step,
    loss, styles); {} for an export made elsewhere."""
    path = Path(path)
    fmt, payload = _inspect(path)
    if fmt in ("torchscript", "onnx"):
        return dict(export_description(path, fmt).get("metadata") or {})
    return _torch_metadata(fmt, payload)


def _torch_metadata(fmt: str, payload: Any) -> dict[str, Any]:
    """The metadata of a loaded model file or Lightning checkpoint payload."""
    if fmt == "stylenet":
        return dict(payload.get("metadata") or {})
    if fmt == "lightning":
        info = payload.get("stylenet") or {}
        metadata = {
            "global_step": payload.get("global_step"),
            "style_image": info.get("style_image"),
        }
        if info.get("styles"):
            metadata["styles"] = info["styles"]
        return metadata
    return {}


def export_description(path: Path, fmt: str) -> dict[str, Any]:
    """The JSON stylenet's exporter stores in a TorchScript (``extra/stylenet.json``) or ONNX
    (metadata property ``stylenet``) file: format, config, inputs, metadata. {} if absent."""
    text: str | None = None
    try:
        if fmt == "torchscript":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("extra/stylenet.json")]
                text = zf.read(names[0]).decode() if names else None
        elif fmt == "onnx":
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            text = next((p.value for p in model.metadata_props if p.key == "stylenet"), None)
        return dict(json.loads(text)) if text else {}
    except (OSError, ValueError, zipfile.BadZipFile, StopIteration) as err:
        raise ModelFileError(path, f"its stylenet description cannot be read ({err})") from err


def _inspect(path: Path) -> tuple[str, Any]:
    """(format, the torch payload for "stylenet"/"lightning" files, else None)."""
    if path.is_dir():
        raise ModelFileError(path, "is a directory, not a model file")
    if not path.is_file():
        raise ModelFileError(path, "no such file")
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as err:
            raise ModelFileError(path, f"a damaged zip/torch file ({err})") from err
        # torch.jit.save archives hold compiled code; torch.save archives only data.pkl + data/.
        if any(re.search(r"(^|/)(code/|constants\.pkl$)", n) for n in names):
            return "torchscript", None
        return _torch_payload(path)
    if head.startswith(PICKLE_MAGIC):
        return _torch_payload(path)
    if _looks_like_onnx(path):
        return "onnx", None
    if path.suffix.lower() == ".onnx":
        raise ModelFileError(path, "not a valid ONNX model (protobuf parse failed or empty)")
    raise ModelFileError(
        path,
        "not a model file stylenet can read (expected a stylenet model.pt, a Lightning .ckpt, a "
        "TorchScript archive or an ONNX model)",
    )


def _torch_payload(path: Path) -> tuple[str, Any]:
    try:
        payload = torch_load(path)
    except FileReadError as err:
        raise ModelFileError(path, err.reason) from err
    if isinstance(payload, dict):
        if payload.get("format") == FORMAT:
            if payload.get("format_version", 0) > FORMAT_VERSION:
                raise ModelFileError(
                    path,
                    f"model-file format version {payload['format_version']} is newer than this "
                    f"stylenet understands ({FORMAT_VERSION}); upgrade stylenet",
                )
            return "stylenet", payload
        state = payload.get("state_dict")
        if isinstance(state, dict) and any(str(k).startswith("net.") for k in state):
            return "lightning", payload
    kind = type(payload).__name__
    if isinstance(payload, dict):
        keys = list(payload)[:4]
        kind = f"a dict with keys {keys}{' ...' if len(payload) > 4 else ''}"
        if "encoder.0.0.conv.weight" in payload:
            kind += "; a bare TransformerNet state dict: write it with save_model"
    raise ModelFileError(
        path,
        f"a torch file but not a stylenet model file ({kind}); expected a model.pt written by "
        "stylenet-train or a Lightning checkpoint of stylenet (state_dict 'net.*')",
    )


def _checkpoint_config(path: Path, ckpt: dict[str, Any]) -> tuple[dict[str, int], dict[str, Any]]:
    weights = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    info = ckpt.get("stylenet")
    if isinstance(info, dict) and isinstance(info.get("config"), dict):
        return info["config"], weights
    # Checkpoints from before on_save_checkpoint stored the config: read it off the shapes.
    try:
        blocks = {int(k.split(".")[1]) for k in weights if k.startswith("residuals.")}
        config = TransformerConfig(
            base_channels=int(weights["encoder.0.0.conv.weight"].shape[0]),
            num_residual_blocks=len(blocks),
        )
    except (KeyError, ValueError, IndexError) as err:
        raise ModelFileError(path, f"checkpoint has no stylenet config ({err})") from err
    return config.to_dict(), weights


def _looks_like_onnx(path: Path) -> bool:
    import onnx

    # Parse the binary protobuf directly: onnx.load guesses a text/JSON encoding from the file
    # extension, and content is what decides here.
    model = onnx.ModelProto()
    try:
        model.ParseFromString(path.read_bytes())
    except Exception:  # protobuf's DecodeError, or a RuntimeWarning-type error from upb
        return False
    # Protobuf parses many byte strings "successfully" as unknown fields; a real model has an
    # opset, a graph with nodes and an input.
    graph = model.graph
    return bool(model.ir_version and model.opset_import and graph.node and graph.input)

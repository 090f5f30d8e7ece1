"""Model files: what a file is (from its content, never its name), the network in it, and its
model card (`stylenet.inference.model_card`).

The exported model file (``model.pt``, written by `save_model`) holds the network's weights and
its card, no pickled code; it is a plain ``torch.save`` of a dict of strings, numbers and
tensors, loaded with ``torch.load(weights_only=True)``::

    {"format": "stylenet.model", "format_version": 2,
     "card": {"network": "TransformerNet", "config": {...}, "task": "style", ...},
     "state_dict": {...}}

Files written before model cards (``"format": "stylenet.TransformerNet"``, version 1, with
``"config"`` and a free ``"metadata"`` dict) are read too: their card is converted
(`ModelCard.from_legacy`).

`detect_format` tells apart the files stylenet reads:

- ``"stylenet"``: a model file (``model.pt``);
- ``"lightning"``: a Lightning checkpoint of ``stylenet-train`` (state dict ``net.*``);
- ``"torchscript"``: an archive written by ``stylenet-export --format torchscript``;
- ``"onnx"``: a model written by ``stylenet-export --format onnx``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stylenet.errors import FileReadError
from stylenet.inference.model_card import CardError, ModelCard, card_for
from stylenet.io.files import PICKLE_MAGIC, ZIP_MAGIC, atomic_write, torch_load
from stylenet.models import ImageNetwork, SuperResolutionNet, TransformerConfig, TransformerNet

FORMAT = "stylenet.model"
FORMAT_VERSION = 2
LEGACY_FORMAT = "stylenet.TransformerNet"  # version 1: "config" + "metadata", no card
FORMATS = ("stylenet", "lightning", "torchscript", "onnx")

# The networks a card can name: class name -> build from its config dict.
NETWORKS: dict[str, Callable[[Mapping[str, Any]], nn.Module]] = {
    "TransformerNet": lambda config: TransformerNet.from_config(TransformerConfig(**config)),
    "SuperResolutionNet": lambda config: SuperResolutionNet(**config),
}


class ModelFileError(FileReadError):
    """A file that is not a readable stylenet model (``.path``, ``.reason``)."""

    kind = "model file"


def save_model(
    net: nn.Module, path: str | os.PathLike[str], *, card: ModelCard | None = None
) -> Path:
    """Write `net` and its card as a self-describing model file (atomically: never a
    half-written file).

    Args:
        net: The network.
        path: The file.
        card: What the file says about the network (default: a card naming only the network,
            its config and its scale). Its network and config are set from `net`.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "card": card_for(net, card).to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
    }
    return atomic_write(path, lambda fh: torch.save(payload, fh), overwrite=True)


def detect_format(path: str | os.PathLike[str]) -> str:
    """Which kind of model file `path` is, from its content: one of `FORMATS`.

    Raises:
        ModelFileError: Missing, a directory, or a file that is none of the supported formats.
    """
    return _inspect(Path(path))[0]


def open_model(path: str | os.PathLike[str]) -> tuple[str, ImageNetwork | None, ModelCard]:
    """What `path` is, its network (eval mode, CPU) for a model file or Lightning checkpoint
    (None for an export), and its card. The file is read once.

    Raises:
        ModelFileError: Not a format stylenet reads, an unreadable card, or weights that do not
            fit the network.
    """
    path = Path(path)
    fmt, payload = _inspect(path)
    if fmt == "stylenet":
        card, weights = _model_file_card(path, payload), payload["state_dict"]
    elif fmt == "lightning":
        card, weights = checkpoint_card(path, payload)
    else:
        return fmt, None, _export_card(path, fmt)
    build = NETWORKS.get(card.network)
    if build is None:
        raise ModelFileError(
            path, f"a {card.network} network; this stylenet builds {', '.join(NETWORKS)}"
        )
    try:
        net = build(card.config)
        net.load_state_dict(weights)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(
            path, f"its weights do not fit {card.network}({dict(card.config)}): {err}"
        ) from err
    assert isinstance(net, TransformerNet | SuperResolutionNet)
    return fmt, net.eval(), card


def load_model(path: str | os.PathLike[str]) -> ImageNetwork:
    """The network in a model file or Lightning checkpoint, in eval mode on the CPU.

    Raises:
        ModelFileError: Not a model file or checkpoint (an export, say), or its weights do not
            fit the network.
    """
    return load_network(path)[0]


def load_network(path: str | os.PathLike[str]) -> tuple[ImageNetwork, ModelCard]:
    """`load_model`'s network and the file's card.

    Raises:
        ModelFileError: As `load_model`.
    """
    fmt, net, card = open_model(path)
    if net is None:
        raise ModelFileError(
            Path(path),
            f"an exported {fmt} model; this needs the model.pt or the Lightning .ckpt it was "
            "exported from",
        )
    return net, card


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """The card of a model file, checkpoint or export (for an export made elsewhere, a card that
    names no network: ``network="unknown"``).

    Raises:
        ModelFileError: Not a format stylenet reads, or an unreadable card.
    """
    path = Path(path)
    fmt, payload = _inspect(path)
    if fmt == "stylenet":
        return _model_file_card(path, payload)
    if fmt == "lightning":
        return checkpoint_card(path, payload)[0]
    return _export_card(path, fmt)


def _read_card(path: Path, read: Callable[[], ModelCard]) -> ModelCard:
    try:
        return read()
    except CardError as err:
        raise ModelFileError(path, str(err)) from err


def _model_file_card(path: Path, payload: dict[str, Any]) -> ModelCard:
    if payload.get("format") == LEGACY_FORMAT:
        metadata, config = payload.get("metadata") or {}, payload["config"]
        return _read_card(path, lambda: ModelCard.from_legacy(metadata, config))
    return _read_card(path, lambda: ModelCard.from_dict(payload.get("card") or {}))


def _export_card(path: Path, fmt: str) -> ModelCard:
    description = export_description(path, fmt)
    if "card" in description:
        return _read_card(path, lambda: ModelCard.from_dict(description["card"]))
    if "config" in description:  # exported before model cards
        metadata, config = description.get("metadata") or {}, description["config"]
        return _read_card(path, lambda: ModelCard.from_legacy(metadata, config))
    return ModelCard(network="unknown")


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
        if payload.get("format") in (FORMAT, LEGACY_FORMAT):
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


def checkpoint_card(path: Path, ckpt: dict[str, Any]) -> tuple[ModelCard, dict[str, Any]]:
    """The card and network weights of a loaded Lightning checkpoint of ``stylenet-train``.

    Raises:
        ModelFileError: An unreadable card, or no config to build the network from.
    """
    weights = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    info = ckpt.get("stylenet")
    if isinstance(info, dict) and "card" in info:
        card = _read_card(path, lambda: ModelCard.from_dict(info["card"]))
        # The step the checkpoint holds, whatever the card was built with.
        training = dataclasses.replace(card.training, global_step=ckpt.get("global_step"))
        return card.replace(training=training), weights
    if isinstance(info, dict) and isinstance(info.get("config"), dict):  # before model cards
        metadata = {"global_step": ckpt.get("global_step"), **info}
        return _read_card(path, lambda: ModelCard.from_legacy(metadata, info["config"])), weights
    # Checkpoints from before on_save_checkpoint stored the config: read it off the shapes.
    try:
        blocks = {int(k.split(".")[1]) for k in weights if k.startswith("residuals.")}
        config = TransformerConfig(
            base_channels=int(weights["encoder.0.0.conv.weight"].shape[0]),
            num_residual_blocks=len(blocks),
        )
    except (KeyError, ValueError, IndexError) as err:
        raise ModelFileError(path, f"checkpoint has no stylenet config ({err})") from err
    metadata = {"global_step": ckpt.get("global_step")}
    return _read_card(path, lambda: ModelCard.from_legacy(metadata, config.to_dict())), weights


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

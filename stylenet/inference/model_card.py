"""The model card: what a model says about itself, as one typed, versioned record.

Every file stylenet writes for a trained network carries one (``model.pt``, the Lightning
checkpoints of ``stylenet-train``, TorchScript and ONNX exports): which task and network, its
config and output scale, the styles it was trained on, the loss, a summary of training, the input
convention and the stylenet version that wrote it. It is built in one place (the training
module's ``card``) and read in one place (`stylenet.inference.model_file.read_card`); everything
else asks the card, never a dict.

The card is stored as plain data (strings, numbers, lists, dicts), so ``torch.load(
weights_only=True)`` and JSON read it. Files written before cards (version 1) carried a free
``metadata`` dict next to the network config; `ModelCard.from_legacy` converts those.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylenet import __version__

__all__ = [
    "CARD_VERSION",
    "TASKS",
    "CardError",
    "ModelCard",
    "StyleRecord",
    "TrainingSummary",
    "card_for",
]

# 1: the metadata dict of files written before cards (read by `ModelCard.from_legacy`).
CARD_VERSION = 2
TASKS = ("style", "superres")
INPUT_CONVENTION = "RGB float in [0, 1], (B, 3, H, W); output (B, 3, H·scale, W·scale)"


class CardError(ValueError):
    """A card that cannot be read: newer than this stylenet, or a field of the wrong kind."""


@dataclass(frozen=True)
class StyleRecord:
    """One style a network was trained on.

    Attributes:
        name: What ``--style`` calls it (a named style config, or the painting's file stem).
        image: The painting's path when it was trained (absolute); None if unknown.
        size: The long side the painting was resized to for its Gram targets (None: as is).
        style_scale: The factor on the loss's style weight for this style.
    """

    name: str
    image: str | None = None
    size: int | None = None
    style_scale: float = 1.0


@dataclass(frozen=True)
class TrainingSummary:
    """Where training stopped and on what.

    Attributes:
        global_step: Optimizer steps taken (None: unknown).
        image_size: Side of the square training crops (None: unknown).
    """

    global_step: int | None = None
    image_size: int | None = None


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about its network and how it was trained.

    Attributes:
        network: The network's class (``TransformerNet``, ``SuperResolutionNet``).
        config: The network's architecture config (its ``config.to_dict()``).
        task: The task it was trained for, one of `TASKS`.
        scale: Output side / input side (1 for style transfer, 4 or 8 for super-resolution).
        styles: The styles, in the order of the network's style weights (style task; a
            one-style model has one record).
        loss: The loss config it was trained with (resolved; ``configs/loss/*.yaml`` keys).
        training: Where training stopped.
        input_convention: What the network takes and gives.
        stylenet_version: The stylenet that wrote the card.
        exported_from: For an export: the file it was exported from.
        style_weights: For an export with one style or mix folded in: {style: weight}.
        version: The card's format version (`CARD_VERSION`).
    """

    network: str
    config: Mapping[str, Any] = field(default_factory=dict)
    task: str = "style"
    scale: int = 1
    styles: tuple[StyleRecord, ...] = ()
    loss: Mapping[str, Any] = field(default_factory=dict)
    training: TrainingSummary = TrainingSummary()
    input_convention: str = INPUT_CONVENTION
    stylenet_version: str = __version__
    exported_from: str | None = None
    style_weights: Mapping[str, float] | None = None
    version: int = CARD_VERSION

    def style_names(self, num_styles: int) -> list[str]:
        """The names of the network's `num_styles` styles: the records' names, else "0", "1",
        ... (a card that does not name them all)."""
        names = [s.name for s in self.styles[:num_styles]]
        return names if len(names) == num_styles else [str(i) for i in range(num_styles)]

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with `changes` (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The card as plain data (what files store)."""
        data = dataclasses.asdict(self)
        data["config"] = dict(self.config)
        data["loss"] = dict(self.loss)
        data["styles"] = [dataclasses.asdict(s) for s in self.styles]
        data["style_weights"] = None if self.style_weights is None else dict(self.style_weights)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Read a card written by `to_dict` (any version up to `CARD_VERSION`).

        Raises:
            CardError: A newer card, or fields of the wrong kind.
        """
        if not isinstance(data, Mapping):
            raise CardError(f"a model card must be a mapping, got {type(data).__name__}")
        version = data.get("version", CARD_VERSION)
        if not isinstance(version, int) or version > CARD_VERSION:
            raise CardError(
                f"model card version {version} is newer than this stylenet reads "
                f"({CARD_VERSION}); upgrade stylenet"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}  # a newer minor field: ignored
        try:
            values["styles"] = tuple(_style(s) for s in data.get("styles") or ())
            values["training"] = TrainingSummary(**dict(data.get("training") or {}))
            card = cls(**values)
        except (TypeError, ValueError) as err:
            raise CardError(f"a malformed model card ({err})") from err
        if not isinstance(card.network, str) or not isinstance(card.config, Mapping):
            raise CardError("a model card needs a network name and its config")
        if card.task not in TASKS:
            raise CardError(f"a model card for task {card.task!r}; this stylenet knows {TASKS}")
        return card

    @classmethod
    def from_legacy(
        cls,
        metadata: Mapping[str, Any],
        config: Mapping[str, Any],
        *,
        network: str = "TransformerNet",
    ) -> ModelCard:
        """The card of a file written before cards: its network config and free metadata dict
        (``style_image``, ``style_size``, ``image_size``, ``loss``, ``global_step``, ``styles``
        records; exports also ``exported_from``, ``style_weights``)."""
        records = metadata.get("styles") or []
        styles: Sequence[StyleRecord]
        if records:
            styles = [_style(r) for r in records]
        elif metadata.get("style_image"):
            image = str(metadata["style_image"])
            styles = [StyleRecord(Path(image).stem, image, metadata.get("style_size"))]
        else:
            styles = []
        if network == "TransformerNet":  # one-style configs left num_styles out
            config = {"num_styles": 1, **config}
        return cls(
            network=network,
            config=dict(config),
            task="style",
            styles=tuple(styles),
            loss=dict(metadata.get("loss") or {}),
            training=TrainingSummary(
                global_step=metadata.get("global_step"), image_size=metadata.get("image_size")
            ),
            stylenet_version="before 0.1 model cards",
            exported_from=metadata.get("exported_from"),
            style_weights=metadata.get("style_weights"),
            version=1,
        )


def card_for(net: Any, card: ModelCard | None = None) -> ModelCard:
    """`card` (default: a card that says nothing else) with `net`'s own network name, config
    and scale: what a file stores next to `net`'s weights."""
    # Every field, defaults included, so that two cards' configs compare key by key.
    config: dict[str, Any] = dataclasses.asdict(net.config)
    network, scale = type(net).__name__, int(getattr(net, "scale", 1))
    if card is None:  # a bare save: the task the network is for
        task = "superres" if network == "SuperResolutionNet" else "style"
        return ModelCard(network=network, config=config, scale=scale, task=task)
    return card.replace(network=network, config=config, scale=scale)


def _style(record: Any) -> StyleRecord:
    if isinstance(record, StyleRecord):
        return record
    if isinstance(record, Mapping):
        known = {f.name for f in dataclasses.fields(StyleRecord)}
        values = {k: v for k, v in record.items() if k in known}
        values["name"] = str(values.get("name"))
        return StyleRecord(**values)
    return StyleRecord(str(record))

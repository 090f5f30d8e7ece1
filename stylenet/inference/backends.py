"""Inference backends: one callable per model format, all with the same contract.

A backend maps (B, 3, H, W) float images in [0, 1] of any H, W ≥ 1 to the network's output,
(B, 3, H·scale, W·scale) float32 on the backend's device: stylized images of the same shape
(``scale`` 1), or upscaled ones (a super-resolution model, ``task == "superres"``).
`load_backend` picks one from the file's format (`stylenet.inference.model_file.open_model`):

- stylenet model file (``model.pt``) or Lightning checkpoint (``.ckpt``) → ``eager``
- TorchScript archive (``stylenet-export --format torchscript``)        → ``torchscript``
- ONNX model (``stylenet-export --format onnx``)                         → ``onnxruntime``

A model file or checkpoint can also be run through ``torchscript`` or ``onnxruntime`` (converted
in memory, as `stylenet.inference.export` would write it), which is how the backends are compared.

By default (``backend="auto"``) a model file or checkpoint runs on the fastest backend measured to
give the same outputs (`choose_backend`): ONNX Runtime on the CPU (its conversion cached in
stylenet's cache, so it is paid once per model file), eager PyTorch on a GPU.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from stylenet.errors import ConfigError
from stylenet.inference.export import DEFAULT_OPSET, ONNX_FORM, onnx_model_proto, script_wrapper
from stylenet.inference.model_card import ModelCard
from stylenet.inference.model_file import ModelFileError, open_model
from stylenet.inference.styles import StyleKey, style_weights
from stylenet.io.files import atomic_write
from stylenet.models import ImageNetwork, PadCrop, StylePadCrop, SuperResolutionNet, TransformerNet
from stylenet.models.padding import SizeRule
from stylenet.weights.store import cache_dir

log = logging.getLogger(__name__)

BACKENDS = ("eager", "torchscript", "onnxruntime")
AUTO = "auto"
# Environment variable naming the backend a model file or checkpoint runs on where none is given
# (default: `AUTO`); an export runs on its own whatever it says.
BACKEND_ENV = "STYLENET_BACKEND"
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# The backend each file format runs on by default.
FORMAT_BACKEND = {
    "stylenet": "eager",
    "lightning": "eager",
    "torchscript": "torchscript",
    "onnx": "onnxruntime",
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to run on; None picks CUDA, else MPS, else the CPU.

    Raises:
        ConfigError: `device` names an accelerator this machine does not have.
    """
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"not a torch device: {device!r} ({err})") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} requested but MPS is not available")
    return dev


def _check_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        # CPU half-precision convolutions are missing or far slower than fp32 in most builds.
        raise ConfigError("precision 'fp16' needs a GPU (cuda or mps); use 'bf16' or 'fp32' on CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name()}")
    return PRECISIONS[precision]


class Backend(abc.ABC):
    """A loaded model: ``backend(images)`` → stylized (or upscaled) images.

    Attributes:
        name: ``"eager"``, ``"torchscript"`` or ``"onnxruntime"``.
        net: The network itself: on the eager backend, and beside a model file converted for
            another backend (tiling runs it eagerly); None where an export hides it.
        device: Where the model runs, and where outputs are returned, except that
            ``onnxruntime`` always returns CPU tensors (ONNX Runtime hands back host memory).
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        source: The file the model was loaded from.
        format: Its detected format (a key of `FORMAT_BACKEND`).
        styles: The style names of a multi-style model file (the network runs the chosen one);
            [] otherwise.
        task: ``"style"`` or ``"superres"`` (a `SuperResolutionNet`, or an export of one).
        scale: Output side / input side: 1 for style transfer, the factor of a super-resolution
            model.
        card: The file's model card (None for a backend made by hand).
    """

    name: str
    device: torch.device
    precision: str
    source: Path
    format: str
    # The floating type inputs are cast to.
    dtype: torch.dtype = torch.float32
    # The PyTorch network (eager backend only): tiling hooks its instance norms.
    net: ImageNetwork | None = None
    styles: list[str] = []  # noqa: RUF012 (replaced per instance, never mutated)
    # (N,) weights of the chosen style or mix of a multi-style network, fed with every batch
    # that brings no rows of its own; None for a one-style network.
    style_weights: Tensor | None = None
    task: str = "style"
    scale: int = 1
    card: ModelCard | None = None

    def __call__(self, images: Tensor, style_weights: Tensor | None = None) -> Tensor:
        """Stylize (B, 3, H, W) float images in [0, 1], any device, any H, W ≥ 1.

        Args:
            images: The photos.
            style_weights: (B, N) weights, a row per image, for a multi-style model (one-hot
                rows stylize each image in its own style in one pass); None: the chosen style
                or mix for every image.

        Returns:
            (B, 3, H·scale, W·scale) float32 in [0, 1] on `device` (``onnxruntime``: on the
            CPU).
        """
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"expected (B, 3, H, W) images, got {shape}")
        if not images.is_floating_point():
            raise TypeError(f"expected float images in [0, 1], got {images.dtype}")
        if min(images.shape[0], images.shape[2], images.shape[3]) < 1:
            raise ValueError(f"expected a non-empty batch, got {tuple(images.shape)}")
        rows = None
        if self.style_weights is not None:  # a multi-style network
            rows = self.style_weights.expand(images.shape[0], -1)
            if style_weights is not None:
                if style_weights.shape != rows.shape:
                    raise ValueError(
                        f"style_weights must be {tuple(rows.shape)}, got "
                        f"{tuple(style_weights.shape)}"
                    )
                rows = style_weights
            rows = rows.to(torch.float32).contiguous()
        elif style_weights is not None:
            raise ConfigError(f"{self.source} carries one style: it takes no style_weights")
        with torch.inference_mode():
            return self._run(images, rows)

    @abc.abstractmethod
    def _run(self, images: Tensor, rows: Tensor | None) -> Tensor:
        """Stylize `images`; `rows`: their (B, N) style weights (multi-style models only)."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r}, "
            f"precision={self.precision!r}, source={str(self.source)!r})"
        )


class _TorchBackend(Backend):
    """Shared by eager and TorchScript: cast weights and inputs, optional channels-last."""

    def __init__(
        self,
        module: nn.Module,
        *,
        source: Path,
        format: str,
        device: torch.device,
        precision: str,
        channels_last: bool,
    ) -> None:
        self.source, self.format, self.device, self.precision = source, format, device, precision
        self.dtype = _check_precision(precision, device)
        self.channels_last = channels_last
        # Casting the weights (rather than autocast) keeps one code path for eager and
        # TorchScript modules; JIT autocast support is partial.
        module = module.to(device=device, dtype=self.dtype).eval()
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module

    def _prepare(self, images: Tensor) -> Tensor:
        x = images.to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


class EagerBackend(_TorchBackend):
    """A `TransformerNet` or `SuperResolutionNet` run by PyTorch; pads to what the network
    accepts and crops back (`PadCrop`).

    With ``compile=True`` the forward goes through `torch.compile` (Inductor), which fuses the
    instance norms, ReLUs and paddings around the convolutions: worth it for many images of one
    size (a video, a folder of same-size photos); each new size compiles again (seconds to a
    minute). `net` stays the plain network (tiling hooks its instance norms).
    """

    name = "eager"

    def __init__(
        self,
        net: ImageNetwork,
        *,
        compile: bool = False,
        style_weights: Tensor | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, **kwargs)
        self.compiled = compile
        # torch.compile of a module returns a module (typed as any callable).
        compiled = cast(nn.Module, torch.compile(self.module)) if compile else self.module
        if isinstance(net, TransformerNet) and net.num_styles > 1:
            if style_weights is None:
                raise ValueError("a multi-style network needs the (N,) weights of its style")
            self.style_weights = style_weights.to(torch.float32).cpu()
            # Tiling hooks the plain instance norms of the chosen style's one-style network.
            self.net = net.bind(self.style_weights).to(self.dtype).eval()
            self._forward: nn.Module = StylePadCrop(compiled)
        else:
            self.net = net  # moved and cast in place above; tiling hooks its instance norms
            self._forward = PadCrop(compiled, SizeRule.of(net))

    def _run(self, images: Tensor, rows: Tensor | None) -> Tensor:
        x = self._prepare(images)
        out = self._forward(x) if rows is None else self._forward(x, rows.to(x.device))
        return out.float().contiguous()


class TorchScriptBackend(_TorchBackend):
    """A TorchScript module written by `stylenet.inference.export` (it pads and crops by itself)."""

    name = "torchscript"

    def _run(self, images: Tensor, rows: Tensor | None) -> Tensor:
        x = self._prepare(images)
        if rows is not None:
            return self.module(x, rows.to(x)).float().contiguous()
        return self.module(x).float().contiguous()


class OnnxRuntimeBackend(Backend):
    """An ONNX model written by `stylenet.inference.export`, run by ONNX Runtime (fp32 only).

    Args:
        model: Path of the .onnx file, or the serialized model bytes.
    """

    name = "onnxruntime"
    precision = "fp32"

    def __init__(
        self,
        model: Path | bytes,
        *,
        source: Path,
        format: str,
        device: torch.device,
        explicit_device: bool,
        net: ImageNetwork | None = None,
    ) -> None:
        import onnxruntime as ort

        self.source, self.format, self.net = source, format, net
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif explicit_device:
                raise ConfigError(
                    f"device {str(device)!r} requested but this onnxruntime build has no "
                    "CUDAExecutionProvider (install onnxruntime-gpu, or use device='cpu')"
                )
        try:
            self.session = ort.InferenceSession(
                model if isinstance(model, bytes) else str(model), providers=providers
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelFileError(source, f"ONNX Runtime cannot load it ({err})") from err
        used = self.session.get_providers()
        self.device = device if "CUDAExecutionProvider" in used else torch.device("cpu")
        inputs = [i.name for i in self.session.get_inputs()]
        if len(inputs) != 1 and inputs[1:] != ["style_weights"]:
            raise ModelFileError(
                source,
                f"expected an ONNX model with an image input (and style_weights), got {inputs}",
            )
        self.input_name = inputs[0]

    def _run(self, images: Tensor, rows: Tensor | None) -> Tensor:
        x = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        feeds = {self.input_name: x}
        if rows is not None:
            feeds["style_weights"] = np.ascontiguousarray(rows.cpu().numpy())
        (y,) = self.session.run(None, feeds)
        # ONNX Runtime hands back host memory; the contract says a CPU tensor.
        return torch.from_numpy(y)


def load_backend(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    backend: str | None = None,
    compile: bool = False,
    style: StyleKey | None = None,
    mix: Mapping[StyleKey, float] | None = None,
) -> Backend:
    """Load any stylenet model file as a `Backend`: a style model, or a super-resolution model
    (``task == "superres"``: it takes no `style` or `mix`; its outputs are ``scale`` × larger).

    Args:
        path: A model.pt, Lightning .ckpt, exported TorchScript or ONNX file (detected by
            content).
        device: Torch device; None picks CUDA, else MPS, else the CPU.
        precision: ``"fp32"``, ``"fp16"`` (GPU only) or ``"bf16"``; ONNX Runtime is fp32 only.
        channels_last: Run convolutions in channels-last memory format (eager/TorchScript).
        backend: ``"eager"``, ``"torchscript"``, ``"onnxruntime"`` or ``"auto"``; None:
            ``$STYLENET_BACKEND`` (for model files: an export runs on its own), else
            ``"auto"``. Auto runs an export on its own backend and a
            model.pt or .ckpt on the fastest exact one for the device (`choose_backend`). A
            model.pt or .ckpt can run on all three (converted); an exported file only on its
            own.
        compile: Run the eager network through `torch.compile` (eager backend only).
        style: Which style of a multi-style model (name or index); required for those unless
            `mix` is given. A one-style model accepts its own name or 0.
        mix: {style: weight} to blend styles (weights scaled to sum to 1).

    Raises:
        ModelFileError: The file is missing or not a stylenet model in any supported format.
        ConfigError: An option the file or device cannot honour.
    """
    path = Path(path)
    fmt, net, card = open_model(path)  # net: None for an export
    chosen = mix is not None or style not in (None, 0)  # 0: any model's first style
    task, scale = model_task(net, card), net.scale if net is not None else int(card.scale)
    names: list[str] = []
    weights = None  # the chosen style's (N,) weights, for a multi-style network
    if task == "superres":
        if chosen:
            raise ConfigError(
                f"{path} is a ×{scale} super-resolution model: a super-resolution model has no "
                "styles"
            )
    elif net is None:
        num_styles = int(card.config.get("num_styles", 1))
        if num_styles == 1 and chosen:
            raise ConfigError(f"{path} is an exported {fmt} model of one style: it takes no style")
        if num_styles > 1:  # the export takes style weights: feed the chosen ones
            names = card.style_names(num_styles)
            weights = style_weights(names, style=style, mix=mix)
    elif isinstance(net, TransformerNet) and (net.num_styles > 1 or chosen):
        names = card.style_names(net.num_styles)
        weights = style_weights(names, style=style, mix=mix)  # checks a one-style model's name
        if net.num_styles == 1:
            weights = None
    name = backend or os.environ.get(BACKEND_ENV) or AUTO
    if name not in (*BACKENDS, AUTO):
        where = f"${BACKEND_ENV}" if backend is None else "backend"
        raise ConfigError(f"{where} must be one of {(*BACKENDS, AUTO)}, got {name!r}")
    if name == AUTO or (backend is None and fmt in ("torchscript", "onnx")):
        name, why = choose_backend(
            fmt,
            resolve_device(device),
            precision=precision,
            channels_last=channels_last,
            compile=compile,
        )
        log.info("%s: backend %s (%s)", path, name, why)
    if fmt in ("torchscript", "onnx") and name != FORMAT_BACKEND[fmt]:
        raise ConfigError(
            f"{path} is an exported {fmt} model: it runs on backend {FORMAT_BACKEND[fmt]!r}, "
            f"not {name!r}"
        )
    if compile and name != "eager":
        raise ConfigError(f"compile applies to the eager backend only, not {name!r}")
    loaded = _load(path, fmt, net, name, device, precision, channels_last, compile, weights)
    loaded.styles = names if len(names) > 1 else []
    loaded.style_weights = weights
    loaded.task, loaded.scale, loaded.card = task, scale, card
    return loaded


def choose_backend(
    fmt: str, device: torch.device, *, precision: str, channels_last: bool, compile: bool
) -> tuple[str, str]:
    """The backend ``"auto"`` picks, and why: the fastest measured to give eager fp32's outputs
    (README, "Which backend"; scripts/bench_stylize.py).

    - an export: its own backend;
    - an option only PyTorch honours (bf16/fp16, channels-last, compile): eager;
    - the CPU: ONNX Runtime where it is installed, on the rewritten graph of
      `stylenet.models.rewrite` (faster than eager at every size measured, fp32-exact);
    - a GPU: eager fp32 (on an H200, channels-last, fp16, bf16 and TorchScript were slower, and
      compile won only at the first size it compiled for).
    """
    if fmt in ("torchscript", "onnx"):
        return FORMAT_BACKEND[fmt], f"an exported {fmt} file"
    asked = [
        option
        for option, on in [
            (f"precision {precision}", precision != "fp32"),
            ("channels-last", channels_last),
            ("compile", compile),
        ]
        if on
    ]
    if asked:
        return "eager", f"{', '.join(asked)} runs on eager PyTorch"
    if device.type == "cpu":
        if importlib.util.find_spec("onnxruntime") is None:
            return (
                "eager",
                "onnxruntime is not installed: pip install onnxruntime for ~0.56× the time",
            )
        return "onnxruntime", "fastest exact on the CPU"
    return "eager", f"fastest exact on {device.type}"


def converted_onnx(path: Path, net: ImageNetwork) -> Path | bytes:
    """`net` (loaded from the model file `path`) as an ONNX model: the cached file in
    stylenet's cache (``onnx/``, keyed by the model file's content, the opset, `ONNX_FORM` and
    torch's version) if there is one, else converted now (seconds) and cached for the next time;
    the model's bytes where the cache cannot be written."""
    key = f"{_file_digest(path)}-opset{DEFAULT_OPSET}-form{ONNX_FORM}-torch{torch.__version__}"
    cached = cache_dir() / "onnx" / f"{key.replace('+', '_')}.onnx"
    if cached.is_file():
        return cached
    log.info("%s: converting to ONNX for onnxruntime (once; cached in %s)", path, cached.parent)
    model = onnx_model_proto(net).SerializeToString()
    try:
        atomic_write(cached, lambda fh: fh.write(model), overwrite=True)
    except OSError as err:
        log.warning("cannot cache the ONNX conversion of %s in %s: %s", path, cached.parent, err)
        return model
    return cached


def _file_digest(path: Path) -> str:
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """SHA-256 of a file's content (hex, 32 digits), once per version of the file."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:32]


def model_task(net: ImageNetwork | None, card: ModelCard) -> str:
    """``"superres"`` or ``"style"``: from the network where there is one (a
    `SuperResolutionNet` upscales, whatever its card says), else (an export) from the card: one
    that names a `SuperResolutionNet`, or says its task."""
    if net is not None:
        return "superres" if isinstance(net, SuperResolutionNet) else "style"
    return "superres" if card.network == "SuperResolutionNet" else card.task


def _load(
    path: Path,
    fmt: str,
    net: ImageNetwork | None,
    name: str,
    device: str | torch.device | None,
    precision: str,
    channels_last: bool,
    compile: bool,
    weights: Tensor | None,
) -> Backend:
    """`load_backend` once the format, network and backend are settled (`weights`: the
    chosen style's, for a multi-style network)."""
    dev = resolve_device(device)

    if name == "onnxruntime":
        if precision != "fp32":
            raise ConfigError(f"the onnxruntime backend runs fp32 only, got {precision!r}")
        if channels_last:
            raise ConfigError("channels_last applies to the eager and torchscript backends only")
        if net is None:
            return OnnxRuntimeBackend(
                path, source=path, format=fmt, device=dev, explicit_device=device is not None
            )
        model = converted_onnx(path, net)
        tile_net = net  # tiling runs it eagerly: the chosen style's network
        if weights is not None and isinstance(net, TransformerNet) and net.num_styles > 1:
            tile_net = net.bind(weights.to(torch.float32)).eval()
        try:
            return OnnxRuntimeBackend(
                model,
                source=path,
                format=fmt,
                device=dev,
                explicit_device=device is not None,
                net=tile_net,
            )
        except ModelFileError:
            if not isinstance(model, Path):
                raise
            log.warning(
                "%s: the cached ONNX conversion %s is unreadable; converting again", path, model
            )
            model.unlink(missing_ok=True)
            return OnnxRuntimeBackend(
                converted_onnx(path, net),
                source=path,
                format=fmt,
                device=dev,
                explicit_device=device is not None,
                net=tile_net,
            )

    if name == "torchscript":
        if net is None:
            try:
                with warnings.catch_warnings():
                    # torch.jit is deprecated (FutureWarning) but is what reads these files.
                    warnings.simplefilter("ignore", FutureWarning)
                    module = torch.jit.load(str(path), map_location=dev)
            except Exception as err:  # torch.jit raises RuntimeError or its own types
                raise ModelFileError(path, f"torch.jit.load failed ({err})") from err
        else:
            module = script_wrapper(net)
        return TorchScriptBackend(
            module,
            source=path,
            format=fmt,
            device=dev,
            precision=precision,
            channels_last=channels_last,
        )
    assert net is not None  # an export on another backend was refused above
    return EagerBackend(
        net,
        source=path,
        format=fmt,
        device=dev,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
        style_weights=weights,
    )

"""Inference backends: one callable per model format, all with the same contract.

A backend maps (B, 3, H, W) float images in [0, 1] of any H, W ≥ 1 to stylized images of the
same shape (float32, on the backend's device). `load_backend` detects the file format from its
content, not its name:

- stylenet model file (``model.pt``, see `stylenet.model_file`)  → ``eager``
- Lightning checkpoint (``.ckpt`` written by `stylenet.module`)   → ``eager``
- TorchScript archive (``stylenet-export --format torchscript``)  → ``torchscript``
- ONNX model (``stylenet-export --format onnx``)                  → ``onnxruntime``

A model file or checkpoint can also be run through ``torchscript`` or ``onnxruntime`` (converted
in memory, as `stylenet.export` would write it), which is how the backends are compared.
"""

from __future__ import annotations

import abc
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stylenet.model_file import FORMAT as MODEL_FILE_FORMAT
from stylenet.model_file import ModelFileError, load_model
from stylenet.models import TransformerConfig, TransformerNet
from stylenet.stylize import pad_to_multiple

BACKENDS = ("eager", "torchscript", "onnxruntime")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# File formats `detect_format` tells apart, and the backend each one runs on by default.
FORMAT_BACKEND = {
    "stylenet": "eager",
    "lightning": "eager",
    "torchscript": "torchscript",
    "onnx": "onnxruntime",
}

_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's pre-1.6 format starts with a pickle (protocol 2+ opcode PROTO = 0x80).
_PICKLE_MAGIC = b"\x80"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to run on; None picks CUDA, else MPS, else the CPU.

    Raises:
        ValueError: `device` names an accelerator this machine does not have.
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
        raise ValueError(f"not a torch device: {device!r} ({err})") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return dev


def _check_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        # CPU half-precision convolutions are missing or far slower than fp32 in most builds.
        raise ValueError("precision 'fp16' needs a GPU (cuda or mps); use 'bf16' or 'fp32' on CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name()}")
    return PRECISIONS[precision]


class Backend(abc.ABC):
    """A loaded model: ``backend(images)`` → stylized images.

    Attributes:
        name: ``"eager"``, ``"torchscript"`` or ``"onnxruntime"``.
        device: Where the model runs, and where outputs are returned, except that
            ``onnxruntime`` always returns CPU tensors (ONNX Runtime hands back host memory).
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        source: The file the model was loaded from.
        format: Its detected format (a key of `FORMAT_BACKEND`).
    """

    name: str
    device: torch.device
    precision: str
    source: Path
    format: str

    def __call__(self, images: Tensor) -> Tensor:
        """Stylize (B, 3, H, W) float images in [0, 1], any device, any H, W ≥ 1.

        Returns:
            (B, 3, H, W) float32 in [0, 1] on `device` (``onnxruntime``: on the CPU).
        """
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"expected (B, 3, H, W) images, got {shape}")
        if not images.is_floating_point():
            raise TypeError(f"expected float images in [0, 1], got {images.dtype}")
        if min(images.shape[0], images.shape[2], images.shape[3]) < 1:
            raise ValueError(f"expected a non-empty batch, got {tuple(images.shape)}")
        with torch.inference_mode():
            return self._run(images)

    @abc.abstractmethod
    def _run(self, images: Tensor) -> Tensor: ...

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
    """A `TransformerNet` run by PyTorch; pads to what the network accepts and crops back.

    With ``compile=True`` the forward goes through `torch.compile` (Inductor), which fuses the
    instance norms, ReLUs and paddings around the convolutions: worth it for many images of one
    size (a video, a folder of same-size photos); each new size compiles again (seconds to a
    minute). `module` stays the plain network (tiling hooks its instance norms).
    """

    name = "eager"

    def __init__(self, module: nn.Module, *, compile: bool = False, **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        self.compiled = compile
        self._forward = torch.compile(self.module) if compile else self.module

    def _run(self, images: Tensor) -> Tensor:
        padded, (h, w) = pad_to_multiple(self._prepare(images))
        return self._forward(padded)[..., :h, :w].float().contiguous()


class TorchScriptBackend(_TorchBackend):
    """A TorchScript module written by `stylenet.export` (it pads and crops by itself)."""

    name = "torchscript"

    def _run(self, images: Tensor) -> Tensor:
        return self.module(self._prepare(images)).float().contiguous()


class OnnxRuntimeBackend(Backend):
    """An ONNX model written by `stylenet.export`, run by ONNX Runtime (fp32 only).

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
    ) -> None:
        import onnxruntime as ort

        self.source, self.format = source, format
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif explicit_device:
                raise ValueError(
                    f"device {str(device)!r} requested but this onnxruntime build has no "
                    "CUDAExecutionProvider (install onnxruntime-gpu, or use device='cpu')"
                )
        try:
            self.session = ort.InferenceSession(
                model if isinstance(model, bytes) else str(model), providers=providers
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelFileError(f"{source}: ONNX Runtime cannot load it ({err})") from err
        used = self.session.get_providers()
        self.device = device if "CUDAExecutionProvider" in used else torch.device("cpu")
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(
                f"{source}: expected an ONNX model with one image input, got "
                f"{[i.name for i in inputs]}"
            )
        self.input_name = inputs[0].name

    def _run(self, images: Tensor) -> Tensor:
        x = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        (y,) = self.session.run(None, {self.input_name: x})
        # ONNX Runtime hands back host memory; the contract says a CPU tensor.
        return torch.from_numpy(y)


def detect_format(path: str | os.PathLike) -> str:
    """Which kind of model file `path` is, from its content: a key of `FORMAT_BACKEND`.

    Raises:
        FileNotFoundError: No such file.
        ModelFileError: A directory, or a file that is none of the supported formats.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as err:
            raise ModelFileError(f"{path} is a damaged zip/torch file ({err})") from err
        # torch.jit.save archives hold compiled code; torch.save archives only data.pkl + data/.
        if any(re.search(r"(^|/)(code/|constants\.pkl$)", n) for n in names):
            return "torchscript"
        return _torch_payload_format(path, _torch_load(path))
    if head.startswith(_PICKLE_MAGIC):
        return _torch_payload_format(path, _torch_load(path))
    if _looks_like_onnx(path):
        return "onnx"
    if path.suffix.lower() == ".onnx":
        raise ModelFileError(f"{path} is not a valid ONNX model (protobuf parse failed or empty)")
    raise ModelFileError(
        f"{path} is not a model file stylenet can read (expected a stylenet model.pt, a Lightning "
        ".ckpt, a TorchScript archive or an ONNX model)"
    )


def _torch_load(path: Path) -> Any:
    try:
        # weights_only: opening a model never runs pickled code. Lightning checkpoints written by
        # stylenet.module hold only tensors, numbers and strings, so they load this way too.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # torch colours its message
        first_line = text.splitlines()[0] if text else type(err).__name__
        raise ModelFileError(
            f"{path} cannot be opened with torch.load(weights_only=True): it is damaged or holds "
            f"pickled objects (a whole nn.Module?), which stylenet never unpickles ({first_line})"
        ) from err


def _torch_payload_format(path: Path, payload: Any) -> str:
    if isinstance(payload, dict):
        if payload.get("format") == MODEL_FILE_FORMAT:
            return "stylenet"
        state = payload.get("state_dict")
        if isinstance(state, dict) and any(str(k).startswith("net.") for k in state):
            return "lightning"
    kind = type(payload).__name__
    if isinstance(payload, dict):
        keys = list(payload)[:4]
        kind = f"a dict with keys {keys}{' ...' if len(payload) > 4 else ''}"
        if "encoder.0.0.conv.weight" in payload:
            kind += "; a bare TransformerNet state dict: use stylenet.model_file.save_model"
    raise ModelFileError(
        f"{path} is a torch file but not a stylenet model ({kind}); expected a model.pt written "
        "by stylenet-train or a Lightning checkpoint of stylenet.module (state_dict 'net.*')"
    )


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


def load_transformer(path: str | os.PathLike) -> TransformerNet:
    """Build the `TransformerNet` in a stylenet model file or Lightning checkpoint (CPU, eval).

    Raises:
        FileNotFoundError: No such file.
        ModelFileError: Not a model file or checkpoint, or its weights do not fit the network.
    """
    path = Path(path)
    return _load_net(path, detect_format(path))


def _load_net(path: Path, fmt: str) -> TransformerNet:
    if fmt == "stylenet":
        return load_model(path)
    if fmt == "lightning":
        return _net_from_checkpoint(path, _torch_load(path))
    raise ModelFileError(
        f"{path} is an exported {fmt} model; this needs the model.pt or the Lightning .ckpt it "
        "was exported from"
    )


def _net_from_checkpoint(path: Path, ckpt: dict[str, Any]) -> TransformerNet:
    weights = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    info = ckpt.get("stylenet")
    if isinstance(info, dict) and isinstance(info.get("config"), dict):
        config = TransformerConfig(**info["config"])
    else:
        # Checkpoints from before on_save_checkpoint stored the config: read it off the shapes.
        try:
            blocks = {int(k.split(".")[1]) for k in weights if k.startswith("residuals.")}
            config = TransformerConfig(
                base_channels=int(weights["encoder.0.0.conv.weight"].shape[0]),
                num_residual_blocks=len(blocks),
            )
        except (KeyError, ValueError, IndexError) as err:
            raise ModelFileError(f"{path}: checkpoint has no stylenet config ({err})") from err
    net = TransformerNet.from_config(config)
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise ModelFileError(f"{path}: checkpoint weights do not fit {config} ({err})") from err
    return net.eval()


def load_backend(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    backend: str | None = None,
    compile: bool = False,
) -> Backend:
    """Load any stylenet model file as a `Backend`.

    Args:
        path: A model.pt, Lightning .ckpt, exported TorchScript or ONNX file (detected by
            content).
        device: Torch device; None picks CUDA, else MPS, else the CPU.
        precision: ``"fp32"``, ``"fp16"`` (GPU only) or ``"bf16"``; ONNX Runtime is fp32 only.
        channels_last: Run convolutions in channels-last memory format (eager/TorchScript).
        backend: Force ``"eager"``, ``"torchscript"`` or ``"onnxruntime"``; None runs each
            format on its own backend. A model.pt or .ckpt can run on all three (converted in
            memory); an exported file only on its own.
        compile: Run the eager network through `torch.compile` (eager backend only).

    Raises:
        FileNotFoundError: No such file.
        ModelFileError: The file is not a stylenet model in any supported format.
        ValueError: An option the file or device cannot honour.
    """
    path = Path(path)
    fmt = detect_format(path)
    name = backend or FORMAT_BACKEND[fmt]
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if fmt in ("torchscript", "onnx") and name != FORMAT_BACKEND[fmt]:
        raise ValueError(
            f"{path} is an exported {fmt} model: it runs on backend {FORMAT_BACKEND[fmt]!r}, "
            f"not {name!r}"
        )
    dev = resolve_device(device)
    if compile and name != "eager":
        raise ValueError(f"compile applies to the eager backend only, not {name!r}")

    if name == "onnxruntime":
        if precision != "fp32":
            raise ValueError(f"the onnxruntime backend runs fp32 only, got {precision!r}")
        if channels_last:
            raise ValueError("channels_last applies to the eager and torchscript backends only")
        if fmt == "onnx":
            model: Path | bytes = path
        else:
            from stylenet.export import onnx_model_proto

            model = onnx_model_proto(_load_net(path, fmt)).SerializeToString()
        return OnnxRuntimeBackend(
            model, source=path, format=fmt, device=dev, explicit_device=device is not None
        )

    options = {"device": dev, "precision": precision, "channels_last": channels_last}
    if name == "torchscript":
        if fmt == "torchscript":
            try:
                with warnings.catch_warnings():
                    # torch.jit is deprecated (FutureWarning) but is what reads these files.
                    warnings.simplefilter("ignore", FutureWarning)
                    module = torch.jit.load(str(path), map_location=dev)
            except Exception as err:  # torch.jit raises RuntimeError or its own types
                raise ModelFileError(f"{path}: torch.jit.load failed ({err})") from err
        else:
            from stylenet.export import script_wrapper

            module = script_wrapper(_load_net(path, fmt))
        return TorchScriptBackend(module, source=path, format=fmt, **options)

    return EagerBackend(_load_net(path, fmt), source=path, format=fmt, compile=compile, **options)

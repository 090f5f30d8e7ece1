"""stylenet-export: write a trained model as TorchScript and/or ONNX that runs without stylenet.

The exported graph is `PadCropWrapper(net)`: it pads any (B, 3, H, W) input to what
`TransformerNet` accepts (H, W multiples of 4 and ≥ 8) exactly as `stylenet.stylize` does, and
crops the output back, so the files take any batch, height and width.

Every export is verified before it is kept: the file written is loaded back (``torch.jit.load``,
or ONNX Runtime) and compared with the eager network on random batches of several sizes and on a
real-looking picture; a max abs difference above `TOLERANCE` deletes the file and fails.

Exporters: TorchScript is ``torch.jit.script`` of the wrapper around a ``torch.jit.trace`` of the
network (the network has no data-dependent control flow and traces shape-polymorphically; only the
pad/crop needs scripted integer arithmetic). ONNX uses torch's dynamo exporter (``torch.export``
with symbolic batch/height/width), the default since torch 2.9; the TorchScript-based exporter is
deprecated. Neither file is frozen or optimized for inference: freezing measured no faster on CPU,
and optimize_for_inference bakes CPU-only (MKLDNN) ops into the graph; the plain files run on any
device ``torch.jit.load(map_location=...)`` / ONNX Runtime providers choose.

Exit status of the command: 0 written and verified, 1 export or verification failed (nothing
kept), 2 unreadable input or an output that exists without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from stylenet.backends import detect_format, load_transformer
from stylenet.model_file import ModelFileError, read_model_file
from stylenet.models import TransformerNet
from stylenet.stylize import stylize_tensor

if TYPE_CHECKING:
    import onnx

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
# Max abs difference (images in [0, 1]) an fp32 export may have against eager PyTorch; measured
# exports differ by ~1e-6 (different conv/instance-norm kernels, same math).
TOLERANCE = 1e-4
# torch's dynamo ONNX exporter emits opset 18 and cannot convert this graph lower (no Pad
# adapter to 17 in the ONNX version converter).
DEFAULT_OPSET = 18
MIN_OPSET = 18


def _padded_size(n: int) -> int:
    """Smallest multiple of 4 that is ≥ max(n, 8): what `pad_to_multiple` pads a side to (4:
    two stride-2 downsamplings; 8: the 9×9 conv's reflection pad must be smaller than the side).
    Literals, not module constants: TorchScript cannot read Python globals."""
    if torch.jit.is_scripting():
        return max(8, n + (-n) % 4)
    # torch.export: sym_max keeps the size symbolic where a Python max() would specialize on
    # the example input. Avoid cleverer integer tricks: the exporter's symbolic simplification
    # turned 4 * (k + 1 // k) into 4 * k + 4 // k, a wrong graph.
    return torch.sym_max(8, 4 * ((n + 3) // 4))


def _pad_index(n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Source row/column for each padded position: (reflect, replicate), each (padded_size,)."""
    idx = torch.arange(_padded_size(n), device=device)
    reflect = torch.where(idx < n, idx, 2 * (n - 1) - idx)
    return reflect, idx.clamp(max=n - 1)


class PadCropWrapper(nn.Module):
    """`net` on any (B, 3, H, W): bottom/right padding as `stylenet.stylize.pad_to_multiple`
    (reflect, or replicate when the image is too small to reflect), then crop back.

    The padding is an index gather chosen with `torch.where` rather than an `if` around
    `F.pad`, so one graph serves every size in TorchScript and in ONNX (both branches are
    pure copies, so the result is bit-identical to `F.pad`).

    Args:
        net: A `TransformerNet` (or a traced/scripted one).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError("expected (B, 3, H, W) images")
        h, w = images.shape[2], images.shape[3]
        reflect_h, replicate_h = _pad_index(h, images.device)
        reflect_w, replicate_w = _pad_index(w, images.device)
        # pad_to_multiple reflects only when both pads are smaller than their sides, i.e. when
        # no reflected index falls below 0; otherwise it replicates both.
        can_reflect = (reflect_h.min() >= 0) & (reflect_w.min() >= 0)
        rows = torch.where(can_reflect, reflect_h, replicate_h)
        cols = torch.where(can_reflect, reflect_w, replicate_w)
        padded = images.index_select(2, rows).index_select(3, cols)
        return self.net(padded)[:, :, :h, :w]


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how well it matched eager PyTorch.

    Attributes:
        format: ``"torchscript"`` or ``"onnx"``.
        path: The file written.
        max_abs_diff: Max abs difference against eager over the verification inputs (NaN when
            not verified).
        seconds: Wall time of export + verification.
        size_bytes: Size of the file.
    """

    format: str
    path: Path
    max_abs_diff: float
    seconds: float
    size_bytes: int

    def summary(self) -> str:
        diff = "not verified" if np.isnan(self.max_abs_diff) else f"{self.max_abs_diff:.2e}"
        return (
            f"{self.format}: {self.path} ({self.size_bytes / 1e6:.1f} MB) "
            f"max |exported - eager| {diff}, {self.seconds:.1f} s"
        )


class ExportVerificationError(RuntimeError):
    """The exported model does not reproduce the eager network."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # torch.jit.script/trace warn about deprecation and about the network's shape checks being
    # traced as constants (they are re-done by the wrapper); both are expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _cpu_copy(net: nn.Module) -> nn.Module:
    # Export from an fp32 CPU copy: the files stay portable (map_location / providers pick the
    # device at load time) and the caller's module is never touched.
    return copy.deepcopy(net).float().cpu().eval()


def script_wrapper(net: TransformerNet) -> torch.jit.ScriptModule:
    """`PadCropWrapper(net)` as a TorchScript module (fp32, CPU)."""
    net = _cpu_copy(net)
    with _quiet(), torch.no_grad():
        # The network is shape-polymorphic already (reflection pads, convs, instance norm and
        # upsampling by scale factor trace without baking sizes); verification proves it.
        traced = torch.jit.trace(net, torch.rand(1, 3, 64, 64), check_trace=False)
        return torch.jit.script(PadCropWrapper(traced))


def onnx_model_proto(net: TransformerNet, *, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """`PadCropWrapper(net)` as an ONNX model with input ``image`` and output ``stylized``, both
    (batch, 3, height, width) with symbolic batch, height and width."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET} (torch's dynamo exporter), got {opset}")
    wrapper = PadCropWrapper(_cpu_copy(net)).eval()
    dims = {
        0: torch.export.Dim("batch"),
        2: torch.export.Dim("height"),
        3: torch.export.Dim("width"),
    }
    # Example sizes other than 1 so that nothing specializes on them.
    example = torch.rand(2, 3, 64, 80)
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=["image"],
            output_names=["stylized"],
            opset_version=opset,
            dynamic_shapes={"images": dims},
            dynamo=True,
            verbose=False,
        )
    model = program.model_proto
    graph = model.graph
    # Intermediate shapes are annotated with sympy expressions as dim names; ONNX Runtime plans
    # buffers by those names, so a name mismatch would mean wrong reuse. Its own inference is
    # enough; drop them, and give the output the input's dim names (the crop makes them equal).
    del graph.value_info[:]
    in_dims = graph.input[0].type.tensor_type.shape.dim
    for out_dim, in_dim in zip(graph.output[0].type.tensor_type.shape.dim, in_dims, strict=True):
        out_dim.CopyFrom(in_dim)
    model.doc_string = (
        "stylenet TransformerNet (Johnson et al. 2016) with pad/crop: image (B, 3, H, W) float32 "
        "RGB in [0, 1], any H, W >= 1 -> stylized, same shape."
    )
    return model


def verification_inputs() -> list[tuple[str, Tensor]]:
    """Named (B, 3, H, W) inputs an export must reproduce: random batches of several sizes (one
    odd, one too small to reflect-pad), a drawn picture with flat regions and edges, and a real
    photo where scikit-image is installed."""
    from stylenet.samples import stained_glass

    gen = torch.Generator().manual_seed(0)
    glass = torch.from_numpy(np.asarray(stained_glass(224), dtype=np.float32) / 255.0)
    inputs = [
        ("random 2×3×64×80", torch.rand(2, 3, 64, 80, generator=gen)),
        ("random 1×3×37×53", torch.rand(1, 3, 37, 53, generator=gen)),
        ("random 2×3×5×3", torch.rand(2, 3, 5, 3, generator=gen)),
        ("stained glass 1×3×223×161", glass.permute(2, 0, 1)[None, :, :223, :161].contiguous()),
    ]
    photo = _sample_photo()
    if photo is not None:
        inputs.append((f"photo 1×3×{photo.shape[2]}×{photo.shape[3]}", photo))
    return inputs


def _sample_photo() -> Tensor | None:
    """A real photo, where scikit-image (which ships a few) is installed: 1×3×199×251 crop."""
    try:
        import skimage
    except ImportError:
        return None
    from stylenet.images import load_image_tensor

    path = Path(skimage.__file__).parent / "data" / "astronaut.png"
    if not path.is_file():
        return None
    return load_image_tensor(path)[None, :, 100:299, 100:351].contiguous()


def verify_export(
    reference: Callable[[Tensor], Tensor],
    exported: Callable[[Tensor], Tensor | np.ndarray],
    inputs: Sequence[tuple[str, Tensor]] | None = None,
    *,
    tolerance: float = TOLERANCE,
) -> float:
    """Compare an exported model with the eager one.

    Args:
        reference: Eager stylizer (any size in, same size out).
        exported: The exported model as a callable (tensor or numpy output).
        inputs: Named inputs (default: `verification_inputs()`).
        tolerance: Largest max abs difference accepted.

    Returns:
        The max abs difference over all inputs.

    Raises:
        ExportVerificationError: A shape differs, an output is not finite, or the difference
            exceeds `tolerance`.
    """
    worst = 0.0
    for name, x in inputs if inputs is not None else verification_inputs():
        want = reference(x).detach().float().cpu()
        got = torch.as_tensor(exported(x)).detach().float().cpu()
        if got.shape != want.shape:
            raise ExportVerificationError(
                f"on {name}: exported output has shape {tuple(got.shape)}, eager "
                f"{tuple(want.shape)}"
            )
        diff = float((got - want).abs().max())
        # `not diff <= tol` also catches NaN.
        if not diff <= tolerance:
            raise ExportVerificationError(
                f"on {name}: max abs difference to eager {diff:.3g} > tolerance {tolerance:g}"
            )
        worst = max(worst, diff)
    return worst


def _eager_reference(net: TransformerNet) -> Callable[[Tensor], Tensor]:
    net = _cpu_copy(net)
    return lambda x: stylize_tensor(net, x)


def _check_target(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise FileExistsError(f"output {path} is a directory")
    if path.exists() and not overwrite:
        raise FileExistsError(f"output {path} exists; pass --overwrite to replace it")


@contextlib.contextmanager
def _atomic_target(path: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary file next to `path`; moved onto `path` only if the block succeeds."""
    _check_target(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _check_target(path, overwrite)  # again: someone may have written it meanwhile
        # mkstemp creates 0600; give the output the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _metadata_json(net: TransformerNet, metadata: dict[str, Any] | None) -> str:
    return json.dumps(
        {
            "format": "stylenet.TransformerNet+PadCrop",
            "config": net.config.to_dict(),
            "input": "image: (B, 3, H, W) float32 RGB in [0, 1], any H, W >= 1",
            "output": "stylized: (B, 3, H, W) float32 in [0, 1]",
            "metadata": metadata or {},
        },
        default=str,
    )


def export_torchscript(
    net: TransformerNet,
    path: str | os.PathLike,
    *,
    verify: bool = True,
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
) -> ExportReport:
    """Write `PadCropWrapper(net)` as TorchScript (load with plain ``torch.jit.load``).

    Args:
        net: The network to export.
        path: Output file (conventionally ``*.torchscript.pt``).
        verify: Load the file back and compare it with eager on `verification_inputs()`.
        overwrite: Replace an existing `path` (otherwise FileExistsError).
        metadata: Stored as ``stylenet.json`` in the archive's extra files.

    Raises:
        ExportVerificationError: The written file does not match eager; nothing is kept.
        FileExistsError: `path` exists and not `overwrite`.
    """
    start = time.perf_counter()
    path = Path(path)
    diff = float("nan")
    with _atomic_target(path, overwrite) as tmp:
        module = script_wrapper(net)
        extra = {"stylenet.json": _metadata_json(net, metadata)}
        with _quiet():
            torch.jit.save(module, str(tmp), _extra_files=extra)
        if verify:
            with _quiet():
                loaded = torch.jit.load(str(tmp), map_location="cpu")
            with torch.no_grad():
                diff = verify_export(_eager_reference(net), loaded)
    return ExportReport("torchscript", path, diff, time.perf_counter() - start, path.stat().st_size)


def export_onnx(
    net: TransformerNet,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
) -> ExportReport:
    """Write `PadCropWrapper(net)` as ONNX (input ``image``, output ``stylized``, dynamic batch,
    height and width).

    Args:
        net: The network to export.
        path: Output file (``*.onnx``).
        opset: ONNX opset (≥ 18).
        verify: Run the file in ONNX Runtime (CPU) and compare it with eager on
            `verification_inputs()`.
        overwrite: Replace an existing `path` (otherwise FileExistsError).
        metadata: Stored as the model's ``stylenet`` metadata property (JSON).

    Raises:
        ExportVerificationError: The written file does not match eager; nothing is kept.
        FileExistsError: `path` exists and not `overwrite`.
    """
    import onnx
    import onnxruntime as ort

    start = time.perf_counter()
    path = Path(path)
    diff = float("nan")
    with _atomic_target(path, overwrite) as tmp:
        model = onnx_model_proto(net, opset=opset)
        onnx.helper.set_model_props(model, {"stylenet": _metadata_json(net, metadata)})
        onnx.checker.check_model(model, full_check=True)
        onnx.save_model(model, str(tmp))  # one self-contained file (weights inline, < 2 GB)
        if verify:
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

            def run(x: Tensor) -> np.ndarray:
                return session.run(None, {"image": x.numpy()})[0]

            diff = verify_export(_eager_reference(net), run)
    return ExportReport("onnx", path, diff, time.perf_counter() - start, path.stat().st_size)


def default_output(model: Path, fmt: str, out_dir: Path | None = None) -> Path:
    """run/model.pt → run/model.torchscript.pt / run/model.onnx (in `out_dir` if given)."""
    return (out_dir or model.parent) / (model.stem + SUFFIXES[fmt])


def _source_metadata(path: Path) -> dict[str, Any]:
    # Best effort: carried into the exported file so it still says what it was trained on.
    info: dict[str, Any] = {"exported_from": path.name}
    try:
        if detect_format(path) == "stylenet":
            info.update(read_model_file(path).get("metadata", {}))
        else:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            info["global_step"] = ckpt.get("global_step")
            info["style_image"] = (ckpt.get("stylenet") or {}).get("style_image")
    except (ModelFileError, OSError, AttributeError, RuntimeError):
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stylenet-export",
        description=(
            "Export a trained stylenet model (model.pt or Lightning .ckpt) as TorchScript and/or "
            "ONNX that runs without stylenet on any image size. Each export is verified against "
            f"eager PyTorch (max abs difference <= {TOLERANCE:g}) before it is kept."
        ),
    )
    parser.add_argument("model", type=Path, help="model.pt or Lightning .ckpt")
    parser.add_argument(
        "--format", choices=[*FORMATS, "all"], default="all", help="what to write (default: all)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-o", "--output-dir", type=Path, help="folder for the outputs (default: next to MODEL)"
    )
    where.add_argument("--output", type=Path, help="output file (with a single --format)")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (default: refuse)"
    )
    args = parser.parse_args(argv)

    formats = list(FORMATS) if args.format == "all" else [args.format]
    if args.output is not None and len(formats) > 1:
        parser.error("--output names one file: use it with --format torchscript or onnx")
    if "onnx" in formats and args.opset < MIN_OPSET:
        parser.error(f"--opset must be >= {MIN_OPSET} (torch's dynamo ONNX exporter)")
    outputs = {
        fmt: args.output
        if args.output is not None
        else default_output(args.model, fmt, args.output_dir)
        for fmt in formats
    }
    for out in outputs.values():
        if out.exists() and out.resolve() == args.model.resolve():
            parser.error(f"output {out} is the input model: refusing to overwrite it")
        if out.exists() and not args.overwrite:
            print(f"stylenet-export: output {out} exists; pass --overwrite", file=sys.stderr)
            return 2

    try:
        net = load_transformer(args.model)
    except (FileNotFoundError, ModelFileError) as err:
        print(f"stylenet-export: {err}", file=sys.stderr)
        return 2
    metadata = _source_metadata(args.model)

    for fmt, out in outputs.items():
        try:
            if fmt == "torchscript":
                report = export_torchscript(net, out, overwrite=args.overwrite, metadata=metadata)
            else:
                report = export_onnx(
                    net, out, opset=args.opset, overwrite=args.overwrite, metadata=metadata
                )
        except ExportVerificationError as err:
            print(
                f"stylenet-export: {fmt} export failed verification, nothing written to {out}: "
                f"{err}",
                file=sys.stderr,
            )
            return 1
        except FileExistsError as err:
            print(f"stylenet-export: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # exporter internals raise many types; report, keep nothing
            print(f"stylenet-export: {fmt} export of {args.model} failed: {err}", file=sys.stderr)
            return 1
        print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

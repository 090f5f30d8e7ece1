"""Export a trained network as TorchScript or ONNX that runs without stylenet.

The exported graph is `PadCrop(net)` (`stylenet.models.padding`): it pads any (B, 3, H, W) input
to what the network accepts (`TransformerNet`: sides a multiple of 4, at least 8;
`SuperResolutionNet`: at least 5) and crops the output back to (H·scale, W·scale), so the files
take any batch, height and width.

Every export is verified before it is kept: the file written is loaded back (``torch.jit.load``,
or ONNX Runtime) and compared with the eager network on random batches of several sizes and on a
real-looking picture; a max abs difference above `TOLERANCE` deletes the file and fails.

Exporters: TorchScript is ``torch.jit.script`` of the wrapper around a ``torch.jit.trace`` of the
network (the network has no data-dependent control flow and traces shape-polymorphically; only the
pad/crop needs scripted integer arithmetic). ONNX uses torch's dynamo exporter (``torch.export``
with symbolic batch/height/width), the default since torch 2.9; the TorchScript-based exporter is
deprecated. The ONNX graph is the network's `inference_form` (`stylenet.models.rewrite`): the same
function with its upsampling convs and its 3-channel output conv rewritten for ONNX Runtime's
kernels (README, "Exports: TorchScript and ONNX"), verified like any export. Neither file is
frozen or optimized for inference: optimize_for_inference bakes CPU-only (MKLDNN) ops into the
graph; the plain files run on any device ``torch.jit.load(map_location=...)`` / ONNX Runtime
providers choose.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from stylenet.errors import ConfigError, StylenetError
from stylenet.inference.model_card import ModelCard, card_for
from stylenet.io.files import atomic_path
from stylenet.models import ImageNetwork, PadCrop, StylePadCrop, SuperResolutionNet, TransformerNet
from stylenet.models.padding import SizeRule
from stylenet.models.rewrite import inference_form

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
# Version of the graph `onnx_model_proto` writes for the same network and opset: part of the key of
# the auto backend's cached conversions, so a change here converts model files again.
# 2: the network's inference_form (sub-pixel upsampling convs, space-to-depth output conv).
ONNX_FORM = 2
MIN_OPSET = 18

Net = TypeVar("Net", bound=nn.Module)


def max_opset() -> int:
    """The newest ONNX opset the installed onnx package knows: its version converter lifts the
    exporter's opset 18 up to there, no further (asked for more, torch keeps 18 silently)."""
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


def check_opset(opset: int) -> None:
    """Refuse an opset outside ``MIN_OPSET … max_opset()``.

    Raises:
        ConfigError: The message gives the supported range.
    """
    import onnx

    newest = max_opset()
    if not MIN_OPSET <= opset <= newest:
        raise ConfigError(
            f"opset must be between {MIN_OPSET} (torch's dynamo exporter) and {newest} (the "
            f"installed onnx {onnx.__version__}), got {opset}"
        )


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


class ExportVerificationError(StylenetError):
    """The exported model does not reproduce the eager network (nothing was kept)."""

    exit_code = 1


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # torch.jit.script/trace warn about deprecation and about the network's shape checks being
    # traced as constants (they are re-done by the wrapper); both are expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _cpu_copy(net: Net) -> Net:
    # Export from an fp32 CPU copy: the files stay portable (map_location / providers pick the
    # device at load time) and the caller's module is never touched.
    return copy.deepcopy(net).float().cpu().eval()


def style_rows(batch: int, num_styles: int, *, mix: bool, offset: int = 0) -> Tensor:
    """(batch, N) style weights for checking a multi-style export: one-hot rows cycling through
    the styles from `offset`, or the same uneven convex mix in every row."""
    if mix:
        weights = torch.arange(1, num_styles + 1, dtype=torch.float32)
        return (weights / weights.sum()).expand(batch, -1).contiguous()
    index = (torch.arange(batch) + offset) % num_styles
    return torch.nn.functional.one_hot(index, num_styles).float()


def num_styles(net: ImageNetwork) -> int:
    """The styles a network takes style weights for (1: none; a super-resolution network)."""
    return net.num_styles if isinstance(net, TransformerNet) else 1


def output_name(net: ImageNetwork) -> str:
    """The exported graph's output: ``stylized``, or ``upscaled`` for a super-resolution net."""
    return "upscaled" if isinstance(net, SuperResolutionNet) else "stylized"


def script_wrapper(net: ImageNetwork) -> torch.jit.ScriptModule:
    """`PadCrop(net)` as a TorchScript module (fp32, CPU); `StylePadCrop(net)`, with a second
    ``style_weights`` (B, N) input, for a multi-style network."""
    copy = _cpu_copy(net)
    with _quiet(), torch.no_grad():
        # The network is shape-polymorphic already (reflection pads, convs, instance norm and
        # upsampling by scale factor trace without baking sizes); verification proves it.
        x = torch.rand(1, 3, 64, 64)
        if num_styles(net) > 1:
            traced = torch.jit.trace(
                copy, (x, style_rows(1, num_styles(net), mix=True)), check_trace=False
            )
            return torch.jit.script(StylePadCrop(traced))
        traced = torch.jit.trace(copy, x, check_trace=False)
        # The traced module has lost the network's type: give PadCrop the network's size rule.
        return torch.jit.script(PadCrop(traced, SizeRule.of(net)))


def onnx_model_proto(net: ImageNetwork, *, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """`PadCrop(net)` as an ONNX model with input ``image``, (batch, 3, height, width), and
    output ``stylized`` of the same shape (``upscaled``, (batch, 3, scale·height, scale·width),
    for a super-resolution network), with symbolic batch, height and width."""
    check_opset(opset)
    multi = num_styles(net) > 1
    scale = SizeRule.of(net).scale
    form = inference_form(_cpu_copy(net))
    wrapper = (StylePadCrop if multi else PadCrop)(form).eval()
    batch = torch.export.Dim("batch")
    dims = {0: batch, 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    # Example sizes other than 1 so that nothing specializes on them.
    example: tuple[Tensor, ...] = (torch.rand(2, 3, 64, 80),)
    names = ["image"]
    shapes: dict[str, Any] = {"images": dims}
    if multi:
        example += (style_rows(2, num_styles(net), mix=True),)
        names.append("style_weights")
        shapes["style_weights"] = {0: batch}
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            example,
            input_names=names,
            output_names=[output_name(net)],
            opset_version=opset,
            dynamic_shapes=shapes,
            dynamo=True,
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    model = program.model_proto
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:  # the version converter failed and torch kept its own opset
        raise ConfigError(f"the ONNX exporter could not write opset {opset} (it wrote {written})")
    graph = model.graph
    # Intermediate shapes are annotated with sympy expressions as dim names; ONNX Runtime plans
    # buffers by those names, so a name mismatch would mean wrong reuse. Its own inference is
    # enough; drop them, and give the output the input's dim names (the crop makes them equal;
    # ×scale for a super-resolution network: named "4*height", say).
    del graph.value_info[:]
    in_dims = graph.input[0].type.tensor_type.shape.dim
    out_dims = graph.output[0].type.tensor_type.shape.dim
    for axis, (out_dim, in_dim) in enumerate(zip(out_dims, in_dims, strict=True)):
        out_dim.CopyFrom(in_dim)
        if axis >= 2 and scale != 1:
            out_dim.dim_param = f"{scale}*{in_dim.dim_param}"
    if isinstance(net, SuperResolutionNet):
        model.doc_string = (
            f"stylenet SuperResolutionNet (Johnson et al. 2016), x{scale}, with padding: image "
            "(B, 3, H, W) float32 RGB in [0, 1], any H, W >= 1 -> upscaled (B, 3, "
            f"{scale}*H, {scale}*W) in [0, 1]."
        )
        return model
    model.doc_string = (
        "stylenet TransformerNet (Johnson et al. 2016) with pad/crop: image (B, 3, H, W) float32 "
        "RGB in [0, 1], any H, W >= 1 -> stylized, same shape."
    )
    if multi:
        model.doc_string += (
            f" style_weights (B, {num_styles(net)}) float32: one row per image, one-hot to pick "
            "a style, a convex row to blend them."
        )
    return model


def verification_inputs(scale: int = 1) -> list[tuple[str, Tensor]]:
    """Named (B, 3, H, W) inputs an export must reproduce: random batches of several sizes (one
    odd, one too small to reflect-pad), a drawn picture with flat regions and edges, and a real
    photo where scikit-image is installed.

    For a ×`scale` network (super-resolution) the sides of the larger inputs are divided by
    scale / 2 (odd ones kept odd), so that no output is over 0.2 MP (the paper's networks need
    about 1.2 KB per output pixel); 1×3×37×53 and 2×3×5×3 (too small for the network unpadded)
    stay as they are.
    """
    from stylenet.io.samples import stained_glass

    shrink = max(1, scale // 2)  # ×4: sides halved, ×8: quartered

    def side(n: int) -> int:
        return n if shrink == 1 else n // shrink | (n & 1)  # an odd side stays odd

    gen = torch.Generator().manual_seed(0)
    glass = torch.from_numpy(np.asarray(stained_glass(224), dtype=np.float32) / 255.0)
    gh, gw = side(223), side(161)
    rh, rw = side(64), side(80)
    inputs = [
        (f"random 2×3×{rh}×{rw}", torch.rand(2, 3, rh, rw, generator=gen)),
        ("random 1×3×37×53", torch.rand(1, 3, 37, 53, generator=gen)),
        ("random 2×3×5×3", torch.rand(2, 3, 5, 3, generator=gen)),
        (f"stained glass 1×3×{gh}×{gw}", glass.permute(2, 0, 1)[None, :, :gh, :gw].contiguous()),
    ]
    photo = _sample_photo(side(199), side(251))
    if photo is not None:
        inputs.append((f"photo 1×3×{photo.shape[2]}×{photo.shape[3]}", photo))
    return inputs


def _sample_photo(height: int = 199, width: int = 251) -> Tensor | None:
    """A real photo, where scikit-image (which ships a few) is installed: a 1×3×199×251 crop (or
    `height` × `width`)."""
    try:
        import skimage
    except ImportError:
        return None
    from stylenet.io.images import load_image_tensor

    path = Path(skimage.__file__).parent / "data" / "astronaut.png"
    if not path.is_file():
        return None
    return load_image_tensor(path)[None, :, 100 : 100 + height, 100 : 100 + width].contiguous()


def verify_export(
    reference: Callable[[Tensor], Tensor],
    exported: Callable[[Tensor], Tensor | np.ndarray],
    inputs: Sequence[tuple[str, Tensor]] | None = None,
    *,
    tolerance: float = TOLERANCE,
) -> float:
    """Compare an exported model with the eager one.

    Args:
        reference: Eager stylizer (any size in, the same size ×scale out).
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


def _eager_reference(net: ImageNetwork) -> Callable[..., Tensor]:
    wrapped = (StylePadCrop if num_styles(net) > 1 else PadCrop)(_cpu_copy(net))

    def run(*inputs: Tensor) -> Tensor:
        with torch.inference_mode():
            return wrapped(*inputs)

    return run


def _verify(net: ImageNetwork, exported: Callable[..., Tensor | np.ndarray]) -> float:
    """`verify_export` of an export against eager (on inputs sized for the network's scale); a
    multi-style export on one-hot rows (each input starting at another style) and on a mix."""
    eager = _eager_reference(net)
    n = num_styles(net)
    if n == 1:
        return verify_export(eager, exported, verification_inputs(SizeRule.of(net).scale))
    worst = 0.0
    for mix in (False, True):
        worst = max(worst, verify_export(*_with_rows(eager, exported, n, mix)))
    return worst


def _with_rows(
    eager: Callable[..., Tensor], exported: Callable[..., Tensor | np.ndarray], n: int, mix: bool
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor | np.ndarray]]:
    """Both models as image-only callables that pass the same `style_rows` to each."""

    def rows(x: Tensor) -> Tensor:
        return style_rows(x.shape[0], n, mix=mix, offset=x.shape[-1])

    def run_eager(x: Tensor) -> Tensor:
        return eager(x, rows(x))

    def run_exported(x: Tensor) -> Tensor | np.ndarray:
        return exported(x, rows(x))

    return run_eager, run_exported


@contextlib.contextmanager
def _verification_of(fmt: str, path: Path) -> Iterator[None]:
    """Say which export failed verification, and that nothing was kept."""
    try:
        yield
    except ExportVerificationError as err:
        raise ExportVerificationError(
            f"{fmt} export failed verification, nothing written to {path}: {err}"
        ) from None


def _description_json(net: ImageNetwork, card: ModelCard | None) -> str:
    """What an export says about itself: its model card (the network's own network, config and
    scale; the task a super-resolution network was trained for) and its inputs and output."""
    card = card_for(net, card)
    n, scale = num_styles(net), SizeRule.of(net).scale
    if isinstance(net, SuperResolutionNet):
        card = card.replace(task="superres")  # whatever card it came with: it upscales
    output = "(B, 3, H, W)" if scale == 1 else f"(B, 3, {scale}*H, {scale}*W)"
    return json.dumps(
        {
            "card": card.to_dict(),
            "input": "image: (B, 3, H, W) float32 RGB in [0, 1], any H, W >= 1"
            + (f"; style_weights: (B, {n}) float32" if n > 1 else ""),
            "output": f"{output_name(net)}: {output} float32 in [0, 1]",
        },
        default=str,
    )


def export_torchscript(
    net: ImageNetwork,
    path: str | os.PathLike,
    *,
    verify: bool = True,
    overwrite: bool = False,
    card: ModelCard | None = None,
) -> ExportReport:
    """Write `PadCrop(net)` as TorchScript (load with plain ``torch.jit.load``).

    Args:
        net: The network to export.
        path: Output file (conventionally ``*.torchscript.pt``).
        verify: Load the file back and compare it with eager on `verification_inputs`.
        overwrite: Replace an existing `path` (otherwise FileExistsError).
        card: The model card, stored (with the inputs) as ``stylenet.json`` in the archive's
            extra files.

    Raises:
        ExportVerificationError: The written file does not match eager; nothing is kept.
        FileExistsError: `path` exists and not `overwrite`.
    """
    start = time.perf_counter()
    path = Path(path)
    diff = float("nan")
    with atomic_path(path, overwrite=overwrite) as tmp:
        module = script_wrapper(net)
        extra = {"stylenet.json": _description_json(net, card)}
        with _quiet():
            torch.jit.save(module, str(tmp), _extra_files=extra)
        if verify:
            with _quiet():
                loaded = torch.jit.load(str(tmp), map_location="cpu")
            with torch.no_grad(), _verification_of("torchscript", path):
                diff = _verify(net, loaded)
    return ExportReport("torchscript", path, diff, time.perf_counter() - start, path.stat().st_size)


def export_onnx(
    net: ImageNetwork,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    overwrite: bool = False,
    card: ModelCard | None = None,
) -> ExportReport:
    """Write `PadCrop(net)` as ONNX (input ``image``, output ``stylized``, or ``upscaled`` for a
    super-resolution network; dynamic batch, height and width).

    Args:
        net: The network to export.
        path: Output file (``*.onnx``).
        opset: ONNX opset, ``MIN_OPSET`` … `max_opset()`.
        verify: Run the file in ONNX Runtime (CPU) and compare it with eager on
            `verification_inputs`.
        overwrite: Replace an existing `path` (otherwise FileExistsError).
        card: The model card, stored (with the inputs) as the model's ``stylenet`` metadata
            property (JSON).

    Raises:
        ConfigError: `opset` outside ``MIN_OPSET`` … `max_opset()`.
        ExportVerificationError: The written file does not match eager; nothing is kept.
        FileExistsError: `path` exists and not `overwrite`.
    """
    import onnx
    import onnxruntime as ort

    start = time.perf_counter()
    path = Path(path)
    diff = float("nan")
    with atomic_path(path, overwrite=overwrite) as tmp:
        model = onnx_model_proto(net, opset=opset)
        onnx.helper.set_model_props(model, {"stylenet": _description_json(net, card)})
        onnx.checker.check_model(model, full_check=True)
        onnx.save_model(model, str(tmp))  # one self-contained file (weights inline, < 2 GB)
        if verify:
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

            def run(x: Tensor, style_weights: Tensor | None = None) -> np.ndarray:
                feeds = {"image": x.numpy()}
                if style_weights is not None:
                    feeds["style_weights"] = style_weights.numpy()
                return session.run(None, feeds)[0]

            with _verification_of("onnx", path):
                diff = _verify(net, run)
    return ExportReport("onnx", path, diff, time.perf_counter() - start, path.stat().st_size)


def default_output(model: Path, fmt: str, out_dir: Path | None = None) -> Path:
    """run/model.pt → run/model.torchscript.pt / run/model.onnx (in `out_dir` if given)."""
    return (out_dir or model.parent) / (model.stem + SUFFIXES[fmt])

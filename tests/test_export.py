"""stylenet-export and stylenet.backends: exported files take any size, need no stylenet code,
match eager; every format is detected by content; bad files get clear errors; a failed
verification keeps nothing."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import stylenet.export as export
from stylenet.backends import detect_format, load_backend, resolve_device
from stylenet.model_file import ModelFileError, save_model
from stylenet.models import TransformerNet
from stylenet.stylize import stylize_tensor

TOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors gain nothing from threads, and on a busy 2-core machine OpenMP barriers
    # under oversubscription made the many small forward passes here ~100× slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net() -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(base_channels=8, num_residual_blocks=1)
    # Instance-norm affines start at exactly 1/0; randomize them so a mix-up between layers
    # (e.g. the ONNX optimizer sharing equal initializers) would show.
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 1 and "conv" not in name:
                if name.endswith("weight"):
                    p.copy_(1 + 0.3 * torch.randn_like(p))
                else:
                    p.normal_(0, 0.3)
    return net.eval()


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = export.main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TransformerNet]:
    net = tiny_net()
    path = save_model(net, tmp_path_factory.mktemp("run") / "model.pt", metadata={"style": "x"})
    return path, net


@pytest.fixture(scope="module")
def exported(model) -> dict:
    """Both formats exported once with the CLI, to the default place next to model.pt."""
    path, _ = model
    rc, out, err = run_main([str(path), "--format", "all"])
    return {
        "rc": rc,
        "stdout": out,
        "stderr": err,
        "torchscript": path.with_name("model.torchscript.pt"),
        "onnx": path.with_name("model.onnx"),
    }


def test_cli_exports_both_formats_and_reports_the_difference(exported) -> None:
    assert exported["rc"] == 0, exported["stderr"]
    lines = exported["stdout"].strip().splitlines()
    assert len(lines) == 2
    for fmt, line in zip(("torchscript", "onnx"), lines, strict=True):
        assert exported[fmt].is_file()
        assert line.startswith(f"{fmt}: {exported[fmt]}")
        diff = float(line.split("max |exported - eager| ")[1].split(",")[0])
        assert diff <= TOL
    # No temporary files left behind.
    assert sorted(p.name for p in exported["onnx"].parent.iterdir()) == [
        "model.onnx",
        "model.pt",
        "model.torchscript.pt",
    ]


def test_exported_files_describe_themselves(exported) -> None:
    import onnx

    with zipfile.ZipFile(exported["torchscript"]) as zf:
        name = next(n for n in zf.namelist() if n.endswith("extra/stylenet.json"))
        info = json.loads(zf.read(name))
    assert info["config"] == {"base_channels": 8, "num_residual_blocks": 1}
    assert info["metadata"]["style"] == "x"
    props = {p.key: p.value for p in onnx.load(exported["onnx"]).metadata_props}
    assert json.loads(props["stylenet"])["config"] == info["config"]


def test_cli_refuses_to_overwrite_and_leaves_files_untouched(exported, model) -> None:
    before = {fmt: exported[fmt].read_bytes() for fmt in ("torchscript", "onnx")}
    for fmt in ("all", "onnx", "torchscript"):
        rc, out, err = run_main([str(model[0]), "--format", fmt])
        assert rc == 2
        assert "--overwrite" in err and out == ""
    assert {fmt: exported[fmt].read_bytes() for fmt in before} == before


def test_cli_overwrite_replaces(model, tmp_path: Path) -> None:
    target = tmp_path / "net.ts"
    target.write_bytes(b"old")
    rc, _, err = run_main(
        [str(model[0]), "--format", "torchscript", "--output", str(target), "--overwrite"]
    )
    assert rc == 0, err
    assert target.read_bytes() != b"old"
    assert detect_format(target) == "torchscript"


def test_cli_usage_errors(model, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run_main([str(model[0]), "--format", "all", "--output", str(tmp_path / "x")])
    with pytest.raises(SystemExit):
        run_main([str(model[0]), "--format", "onnx", "--opset", "12"])
    rc, _, err = run_main([str(tmp_path / "missing.pt"), "-o", str(tmp_path / "out")])
    assert rc == 2 and "missing.pt" in err
    rc, _, err = run_main([str(model[0].with_name("model.onnx")), "-o", str(tmp_path / "out")])
    assert rc == 2 and "exported onnx model" in err
    assert not (tmp_path / "out").exists()


def test_exports_run_without_stylenet_at_new_sizes(exported, model, tmp_path: Path) -> None:
    """Odd sizes, batch 2, sizes unlike the export examples, in a process without stylenet."""
    _, net = model
    gen = torch.Generator().manual_seed(1)
    cases = {"a": torch.rand(2, 3, 333, 517, generator=gen), "b": torch.rand(1, 3, 37, 53)}
    for key, x in cases.items():
        np.save(tmp_path / f"{key}_in.npy", x.numpy())
        np.save(tmp_path / f"{key}_ref.npy", stylize_tensor(net, x).numpy())
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np, onnxruntime as ort, torch
        ts = torch.jit.load({str(exported["torchscript"])!r})
        sess = ort.InferenceSession({str(exported["onnx"])!r}, providers=["CPUExecutionProvider"])
        diffs = {{}}
        for key in ("a", "b"):
            x = np.load(key + "_in.npy"); ref = np.load(key + "_ref.npy")
            with torch.no_grad():
                y_ts = ts(torch.from_numpy(x)).numpy()
            y_onnx = sess.run(["stylized"], {{"image": x}})[0]
            assert y_ts.shape == y_onnx.shape == ref.shape, (y_ts.shape, y_onnx.shape)
            diffs[key] = [float(np.abs(y_ts - ref).max()), float(np.abs(y_onnx - ref).max())]
        assert not any(m == "stylenet" or m.startswith("stylenet.") for m in sys.modules)
        print(json.dumps(diffs))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"  # see _one_thread
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(d <= TOL for pair in diffs.values() for d in pair), diffs


def test_exports_match_eager_at_every_small_size(exported, model) -> None:
    """Reflect vs replicate padding, multiples of 4 and the 8-px minimum, in both formats."""
    import onnxruntime as ort

    _, net = model
    ts = load_backend(exported["torchscript"], device="cpu")
    sess = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    wrapper = export.PadCropWrapper(net).eval()
    worst = 0.0
    for h in range(1, 14):
        for w in range(1, 14):
            x = torch.rand(1, 3, h, w)
            ref = stylize_tensor(net, x)
            with torch.no_grad():
                outs = [ts(x), torch.from_numpy(sess.run(None, {"image": x.numpy()})[0])]
                outs.append(wrapper(x))
            for y in outs:
                assert y.shape == ref.shape
                worst = max(worst, float((y - ref).abs().max()))
    assert worst <= TOL


def test_load_backend_detects_every_format_by_content(exported, model, tmp_path: Path) -> None:
    path, net = model
    ckpt = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": {"net." + k: v for k, v in net.state_dict().items()},
            "global_step": 7,
            "stylenet": {"config": net.config.to_dict(), "style_image": "x.jpg"},
        },
        ckpt,
    )
    # Misleading names: detection must read the content.
    ts_renamed = shutil.copy(exported["torchscript"], tmp_path / "exported.onnx")
    onnx_renamed = shutil.copy(exported["onnx"], tmp_path / "exported.pt")
    expected = [
        (path, "stylenet", "eager"),
        (ckpt, "lightning", "eager"),
        (exported["torchscript"], "torchscript", "torchscript"),
        (exported["onnx"], "onnx", "onnxruntime"),
        (ts_renamed, "torchscript", "torchscript"),
        (onnx_renamed, "onnx", "onnxruntime"),
    ]
    x = torch.rand(2, 3, 45, 31)
    ref = stylize_tensor(net, x)
    for file, fmt, name in expected:
        backend = load_backend(file, device="cpu")
        assert (backend.format, backend.name) == (fmt, name), file
        y = backend(x)
        assert y.dtype == torch.float32 and y.device.type == "cpu" and y.shape == x.shape
        assert float((y - ref).abs().max()) <= TOL, file


def test_a_model_file_runs_on_every_backend(model) -> None:
    path, net = model
    x = torch.rand(1, 3, 19, 26)
    ref = stylize_tensor(net, x)
    for name in ("eager", "torchscript", "onnxruntime"):
        backend = load_backend(path, device="cpu", backend=name)
        assert backend.name == name
        assert float((backend(x) - ref).abs().max()) <= TOL


def test_backend_options(model, exported) -> None:
    path, net = model
    x = torch.rand(1, 3, 21, 30)
    ref = stylize_tensor(net, x)
    y = load_backend(path, device="cpu", channels_last=True)(x)
    assert float((y - ref).abs().max()) <= TOL
    for file in (path, exported["torchscript"]):
        y = load_backend(file, device="cpu", precision="bf16")(x.double())
        assert y.dtype == torch.float32 and float((y - ref).abs().max()) < 0.05
    with pytest.raises(ValueError, match="fp16"):
        load_backend(path, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="fp32"):
        load_backend(exported["onnx"], device="cpu", precision="bf16")
    with pytest.raises(ValueError, match="channels_last"):
        load_backend(exported["onnx"], device="cpu", channels_last=True)
    with pytest.raises(ValueError, match="onnxruntime"):
        load_backend(exported["onnx"], device="cpu", backend="eager")
    with pytest.raises(ValueError, match="backend"):
        load_backend(path, device="cpu", backend="tensorflow")
    backend = load_backend(path, device="cpu")
    with pytest.raises(ValueError, match="B, 3, H, W"):
        backend(torch.rand(3, 8, 8))
    with pytest.raises(TypeError):
        backend(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def _bad_files(root: Path) -> dict[str, Path]:
    root.mkdir(exist_ok=True)
    (root / "folder").mkdir(exist_ok=True)
    (root / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "notes.pt").write_text("this is a text file, not a model\n")
    (root / "config.json").write_text('{"base_channels": 8}')
    (root / "garbage.onnx").write_bytes(np.random.default_rng(1).bytes(2048))
    torch.save(tiny_net().state_dict(), root / "state_dict.pt")
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, root / "vgg16.pt")
    return {
        "missing": root / "missing.pt",
        "directory": root / "folder",
        "random": root / "random.pt",
        "text": root / "notes.pt",
        "json": root / "config.json",
        "garbage_onnx": root / "garbage.onnx",
        "state_dict": root / "state_dict.pt",
        "vgg": root / "vgg16.pt",
    }


@pytest.mark.parametrize(
    "kind",
    ["missing", "directory", "random", "text", "json", "garbage_onnx", "state_dict", "vgg"],
)
def test_bad_files_get_clear_errors(kind: str, tmp_path: Path) -> None:
    path = _bad_files(tmp_path / "bad")[kind]
    expected = FileNotFoundError if kind == "missing" else ModelFileError
    with pytest.raises(expected, match=path.name):
        load_backend(path, device="cpu")
    rc, out, err = run_main([str(path), "-o", str(tmp_path / "out")])
    assert rc == 2 and path.name in err and out == ""
    assert not (tmp_path / "out").exists()


def test_verify_export_rejects_mismatches() -> None:
    net = tiny_net()
    ref = export._eager_reference(net)
    inputs = [("x", torch.rand(1, 3, 9, 11))]
    assert export.verify_export(ref, ref, inputs) == 0.0
    with pytest.raises(export.ExportVerificationError, match="tolerance"):
        export.verify_export(ref, lambda x: ref(x) + 2e-4, inputs)
    with pytest.raises(export.ExportVerificationError, match="tolerance"):
        export.verify_export(ref, lambda x: ref(x) * float("nan"), inputs)
    with pytest.raises(export.ExportVerificationError, match="shape"):
        export.verify_export(ref, lambda x: ref(x)[..., :-1], inputs)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_failed_verification_keeps_nothing(
    fmt: str, model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exported file is compared with a (perturbed) eager reference: refused, deleted."""
    real = export._eager_reference
    monkeypatch.setattr(export, "_eager_reference", lambda net: lambda x: real(net)(x) + 1e-3)
    out_dir = tmp_path / "out"
    rc, out, err = run_main([str(model[0]), "--format", fmt, "-o", str(out_dir)])
    assert rc == 1 and "verification" in err and out == ""
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
    # With --overwrite, an existing output survives a failed export.
    out_dir.mkdir(exist_ok=True)
    target = out_dir / "kept.bin"
    target.write_bytes(b"previous")
    rc, _, _ = run_main([str(model[0]), "--format", fmt, "--output", str(target), "--overwrite"])
    assert rc == 1 and target.read_bytes() == b"previous"
    assert list(out_dir.iterdir()) == [target]

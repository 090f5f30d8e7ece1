"""`stylenet-export`: both formats by default, verified; outputs checked before any work; bad
models and arguments end in one line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

import stylenet.cli.export as cli_export
import stylenet.inference.export as export
from stylenet.cli.export import main
from stylenet.inference.backends import load_backend
from stylenet.inference.model_file import detect_format, read_card
from stylenet.models import TransformerNet
from tests.helpers import run_cli, save_tiny_model, save_tiny_sr_model

TOL = 1e-4


def run_main(argv: list[str]) -> tuple[int, str, str]:
    return run_cli(main, argv)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TransformerNet]:
    return save_tiny_model(tmp_path_factory.mktemp("run"))


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
    rc, _, err = run_main([str(model[0]), "--format", "all", "--output", str(tmp_path / "x")])
    assert rc == 2 and err.startswith("stylenet-export: --output names one file")
    rc, _, err = run_main([str(model[0]), "--format", "onnx", "--opset", "12"])
    assert rc == 2 and "--opset must be between 18" in err
    rc, _, err = run_main([str(tmp_path / "missing.pt"), "-o", str(tmp_path / "out")])
    assert rc == 2 and "missing.pt" in err
    rc, _, err = run_main([str(model[0].with_name("model.onnx")), "-o", str(tmp_path / "out")])
    assert rc == 2 and "exported onnx model" in err
    assert not (tmp_path / "out").exists()
    for _rc, _, err in (
        run_main([str(p), "-o", str(tmp_path / "out")])
        for p in (tmp_path / "missing.pt", model[0].with_name("model.onnx"))
    ):
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_failed_verification_exits_1_and_keeps_nothing(
    model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt = "torchscript"  # the library test covers both formats
    real = export._eager_reference
    monkeypatch.setattr(export, "_eager_reference", lambda net: lambda x: real(net)(x) + 1e-3)
    out_dir = tmp_path / "out"
    rc, out, err = run_main([str(model[0]), "--format", fmt, "-o", str(out_dir)])
    assert rc == 1 and out == ""
    assert err.startswith(f"stylenet-export: {fmt} export failed verification, nothing written")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


# --- issue 16: refused before any work, in one line, exit status 2, nothing written -----------


def test_an_opset_the_exporter_cannot_write_is_refused(model, tmp_path: Path) -> None:
    # It used to export anyway: a converter traceback on stderr, opset 18 in the file, exit 0.
    out = tmp_path / "out"
    rc, stdout, err = run_main([str(model[0]), "--format", "onnx", "--opset", "99", "-o", str(out)])
    assert rc == 2 and stdout == ""
    assert err.splitlines() == [
        f"stylenet-export: --opset must be between 18 (torch's dynamo exporter) and "
        f"{export.max_opset()} (the installed onnx {onnx.__version__}), got 99"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (["-o", "FILE"], "-o/--output-dir {file} is a file, not a folder"),
        (
            ["-o", "FILE/sub"],
            "-o/--output-dir {file}/sub is inside {file}, which is a file, not a folder",
        ),
        (
            ["--format", "onnx", "--output", "FILE/m.onnx"],
            "--output {file}/m.onnx is inside {file}, which is a file, not a folder",
        ),
        (
            ["--format", "onnx", "--output", "DIR", "--overwrite"],
            "--output {dir} is a folder, not a file",
        ),
    ],
)
def test_an_output_in_the_way_is_named_before_any_work(
    model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: list[str], message: str
) -> None:
    file, folder = tmp_path / "notes.txt", tmp_path / "folder"
    file.write_text("a file, not a folder")
    folder.mkdir()
    args = [a.replace("FILE", str(file)).replace("DIR", str(folder)) for a in where]

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the output should have been refused before any work")

    monkeypatch.setattr(cli_export, "load_network", no_work)
    rc, stdout, err = run_main([str(model[0]), *args])
    assert rc == 2 and stdout == ""
    assert err.splitlines() == ["stylenet-export: " + message.format(file=file, dir=folder)]
    assert file.read_text() == "a file, not a folder" and list(folder.iterdir()) == []


def test_a_superres_model_exports_and_takes_no_style(tmp_path: Path) -> None:
    path, _ = save_tiny_sr_model(tmp_path / "sr")
    rc, out, err = run_main([str(path)])
    assert rc == 0, err
    for fmt in ("torchscript", "onnx"):
        exported = path.with_name("model" + export.SUFFIXES[fmt])
        assert exported.is_file() and f"{fmt}: {exported}" in out
        card = read_card(exported)
        assert (card.task, card.scale, card.network) == ("superres", 4, "SuperResolutionNet")
        assert card.exported_from == "model.pt"
        backend = load_backend(exported, device="cpu")
        x = torch.rand(1, 3, 9, 14)
        assert backend(x).shape == (1, 3, 36, 56)
    for flag in (["--style", "candy"], ["--mix", "a:1,b:2"]):
        out_dir = tmp_path / "again"
        rc, out, err = run_main([str(path), "-o", str(out_dir), *flag])
        assert rc == 2 and out == ""
        assert err.splitlines() == [
            f"stylenet-export: {flag[0]}: {path} is a ×4 super-resolution model, and a "
            "super-resolution model has no styles"
        ]
        assert not out_dir.exists()

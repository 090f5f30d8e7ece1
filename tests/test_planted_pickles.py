"""Nothing stylenet reads is unpickled beyond tensors, numbers and strings: a file whose pickle
would run code (``os.system("touch MARKER")``) is refused, by name, at every entry point that
reads a checkpoint, model or weights file, and the marker never appears.

The training entry points that find files on their own (``resume=auto``, the divergence
set-aside, the CSV restore of a resumed run) are covered here through the functions they call and
end to end in tests/cli/test_train.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import stylenet
from stylenet.errors import FileReadError, StylenetError
from stylenet.inference.backends import load_backend
from stylenet.inference.model_file import detect_format, load_model, read_card
from stylenet.io.files import torch_load, unsafe_globals
from stylenet.training.checkpoints import (
    AtomicCheckpointIO,
    checkpoint_step,
    find_resume_checkpoint,
    set_aside_after,
)
from stylenet.weights.store import load_features_state_dict
from tests.helpers import PlantedCode, photo

REFUSED = "it holds a pickled posix.system"


def plant(path: Path, marker: Path, *, zip_format: bool = True) -> Path:
    """A file that looks like a checkpoint (a step, a state dict) but whose pickle runs code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"global_step": 99, "state_dict": {"net.w": torch.ones(2)}, "x": PlantedCode(marker)}
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "a planted pickle ran its code"


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_load_names_what_it_refused_whatever_the_payload(
    tmp_path: Path, marker: Path, zip_format: bool
) -> None:
    path = plant(tmp_path / "x.pt", marker, zip_format=zip_format)
    assert unsafe_globals(path) == ["posix.system"]
    with pytest.raises(FileReadError, match=REFUSED):
        torch_load(path)


READERS: dict[str, Callable[[Path], Any]] = {
    "checkpoint_step (resume=auto, divergence, CSV restore)": checkpoint_step,
    "Lightning's checkpoint loading (ckpt_path, resume)": AtomicCheckpointIO().load_checkpoint,
    "load_model": load_model,
    "read_card": read_card,
    "detect_format": detect_format,
    "load_backend": load_backend,
    "stylenet.load": stylenet.load,
    "VGG weights (.pth)": load_features_state_dict,
}


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_a_planted_pickle(tmp_path: Path, marker: Path, reader: str) -> None:
    path = plant(tmp_path / ("weights.pth" if "VGG" in reader else "last.ckpt"), marker)
    with pytest.raises(StylenetError, match=REFUSED):
        READERS[reader](path)


def test_resume_and_set_aside_pass_over_a_planted_checkpoint(
    tmp_path: Path, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.save({"global_step": 4}, tmp_path / "step0000004.ckpt")
    plant(tmp_path / "last.ckpt", marker)  # claims step 99: would win if it were read
    assert find_resume_checkpoint(tmp_path) == tmp_path / "step0000004.ckpt"
    assert f"resume: ignoring cannot read file {tmp_path / 'last.ckpt'}: {REFUSED}" in caplog.text
    assert set_aside_after(tmp_path, 2) == [tmp_path / "step0000004.ckpt.diverged"]
    assert (tmp_path / "last.ckpt").is_file()  # not ours to move: left for the user to look at


# --- the console scripts, as a user runs them ----------------------------------------------

COMMANDS: dict[str, list[str]] = {
    "stylenet-stylize": ["stylize", "{planted}", "{photo}", "-o", "{tmp}/out.jpg"],
    "stylenet-export": ["export", "{planted}", "--format", "onnx", "-o", "{tmp}/exported"],
    "stylenet-evaluate": ["evaluate", "{planted}", "--content", "{photo}", "-o", "{tmp}/eval"],
    "stylenet-optimize --weights": [
        "optimize",
        "texture",
        "--style",
        "{photo}",
        "--weights",
        "{planted}",
        "--size",
        "32",
        "--iterations",
        "1",
        "-o",
        "{tmp}/texture.png",
    ],
}


@pytest.fixture(scope="module")
def command_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("planted")
    marker = tmp / "code-ran"
    fill = {
        "tmp": str(tmp),
        "planted": str(plant(tmp / "model.pt", marker)),
        "photo": str(photo(tmp / "photo.png", (48, 40))),
    }
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"stylenet.cli.{args[0]}",
                *(a.format(**fill) for a in args[1:]),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in COMMANDS.items()
    }
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert not marker.exists(), "a planted pickle ran its code"
    return done


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_refuses_a_planted_model_in_one_line(command: str, command_runs) -> None:
    proc = command_runs[command]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"{command.split()[0]}: ") and REFUSED in line, line


def test_the_app_does_not_offer_a_planted_model(tmp_path: Path, marker: Path) -> None:
    pytest.importorskip("gradio")
    from stylenet.inference.serving import find_models
    from tests.helpers import save_tiny_model

    save_tiny_model(tmp_path / "good")
    plant(tmp_path / "bad" / "model.pt", marker)
    found = find_models([tmp_path])
    assert [p.parent.name for p in found.values()] == ["good"]
    with pytest.raises(StylenetError, match=REFUSED):
        find_models([tmp_path / "bad" / "model.pt"])

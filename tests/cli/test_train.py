"""`stylenet-train` as a user runs it, in subprocesses: sweeps, DDP, and every user error ending
in one line naming the setting, exit status 2 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from stylenet.inference.model_file import load_model
from tests.helpers import tiny_run_overrides

TRAIN = [sys.executable, "-m", "stylenet.cli.train"]


def user_env() -> dict[str, str]:
    """The environment a user has: no HYDRA_FULL_ERROR (conftest sets it for in-process runs)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["WANDB_MODE"] = "offline"
    return env


# --- user errors: one row each --------------------------------------------------------------
# Each row: (overrides of a tiny run, "-key" to leave a key out; what the one stderr line must
# contain). {tmp} is filled in by the fixture, which starts every row's process at once (they
# fail within seconds).

ROWS: dict[str, tuple[list[str], str]] = {
    "empty data.root": (["data.root={tmp}/empty"], "data: no images ("),
    "missing data.root": (["data.root={tmp}/nope"], "data.root={tmp}/nope: no such folder"),
    "data.root not set": (["-data.root"], "data.root is not set"),
    "missing style.image": (["style.image={tmp}/nope.jpg"], "style.image={tmp}/nope.jpg: no such"),
    "unreadable style.image": (
        ["style.image={tmp}/notes.jpg"],
        "style.image={tmp}/notes.jpg: not an image",
    ),
    "truncated style.image": (["style.image={tmp}/cut.png"], "style.image={tmp}/cut.png: "),
    "style.image is a directory": (["style.image={tmp}"], "style.image={tmp}: is a directory"),
    "truncated ckpt_path": (
        ["ckpt_path={tmp}/cut.ckpt"],
        "ckpt_path={tmp}/cut.ckpt: damaged or truncated",
    ),
    "missing ckpt_path": (["ckpt_path={tmp}/none.ckpt"], "ckpt_path={tmp}/none.ckpt: no such file"),
    "named style without its painting": (
        ["style=mosaic", "-style.image", "paths.style_dir={tmp}/styles"],
        "style.image={tmp}/styles/mosaic.jpg: no such file; style=mosaic looks for its painting",
    ),
    "bad value met building an object": (
        ["data.batch_size=0"],
        "data: batch_size must be positive",
    ),
    "unknown config key": (["trainer.max_step=5"], "Could not override 'trainer.max_step'"),
}


@pytest.fixture(scope="module")
def rows(
    tmp_path_factory: pytest.TempPathFactory, photo_dir: Path, style_path: Path
) -> dict[str, tuple[subprocess.CompletedProcess[str], str]]:
    tmp = tmp_path_factory.mktemp("errors")
    (tmp / "empty").mkdir()
    (tmp / "notes.jpg").write_text("not an image")
    (tmp / "cut.png").write_bytes(style_path.read_bytes()[:400])
    torch.save({"state_dict": {"net.w": torch.zeros(4096)}}, tmp / "whole.ckpt")
    (tmp / "cut.ckpt").write_bytes((tmp / "whole.ckpt").read_bytes()[:2000])
    fill = {"tmp": str(tmp)}
    procs = {}
    for name, (overrides, expected) in ROWS.items():
        base = tiny_run_overrides(style_path, photo_dir)
        keys = {o.split("=", 1)[0] for o in overrides}
        args = [o for o in base if o.split("=", 1)[0] not in keys | {k[1:] for k in keys}]
        args += [o.format(**fill) for o in overrides if not o.startswith("-")]
        args += ["logger=none", f"hydra.run.dir={tmp}/run-{len(procs)}"]
        proc = subprocess.Popen(
            [*TRAIN, *args],
            env=user_env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs[name] = (proc, args, expected.format(**fill))
    done = {}
    for name, (proc, args, expected) in procs.items():
        out, err = proc.communicate(timeout=600)
        done[name] = (subprocess.CompletedProcess(args, proc.returncode, out, err), expected)
    return done


def error_lines(stderr: str) -> list[str]:
    """stderr without the log lines a run prints before it fails (Lightning's seed message)."""
    return [line for line in stderr.splitlines() if line and not line.startswith("Seed set")]


@pytest.mark.parametrize("row", [r for r in ROWS if r != "unknown config key"])
def test_a_user_error_is_one_line_and_exit_status_2(row: str, rows) -> None:
    proc, expected = rows[row]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert line.startswith("stylenet-train: ") and expected in line, line


def test_a_config_hydra_cannot_compose_exits_2_with_hydras_message(rows) -> None:
    proc, expected = rows["unknown config key"]
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path: Path, photo_dir: Path) -> None:
    args = [*tiny_run_overrides(tmp_path / "nope.jpg", photo_dir), f"hydra.run.dir={tmp_path}"]
    for cmd, env in (
        ([*TRAIN, *args, "--debug"], user_env()),
        ([*TRAIN, *args], {**user_env(), "HYDRA_FULL_ERROR": "1"}),
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 1
        assert "Traceback" in proc.stderr and "ConfigError: style.image=" in proc.stderr


def test_a_sweep_runs_every_job_and_reports_each_bad_one(tmp_path: Path, photo_dir, style_path):
    cmd = [*TRAIN, "-m", *tiny_run_overrides(style_path, photo_dir), "data.batch_size=0,-1"]
    cmd += ["logger=none", f"hydra.sweep.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=user_env(), timeout=600)
    assert proc.returncode == 2
    lines = [line for line in error_lines(proc.stderr) if line.startswith("stylenet-train:")]
    assert lines == [
        "stylenet-train: data: batch_size must be positive, got 0",
        "stylenet-train: data: batch_size must be positive, got -1",
    ]
    assert "Traceback" not in proc.stderr


# --- runs -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_multirun_sweep_makes_separate_runs(tmp_path, photo_dir, style_path) -> None:
    sweep_dir = tmp_path / "sweep"
    cmd = [
        *TRAIN,
        "-m",
        *tiny_run_overrides(style_path, photo_dir, steps=2),
        "loss.vgg.weights=random",  # about sweeps, not quality: needs no real weights
        "model=small",
        "loss.style_weight=1,2",
        "logger=wandb",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=user_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    weights = []
    for job in jobs:
        assert (job / "model.pt").is_file()
        assert len(list((job / "wandb").glob("offline-run-*"))) == 1
        weights.append(yaml.safe_load((job / "config.yaml").read_text())["loss"]["style_weight"])
    assert weights == [1.0, 2.0]
    assert proc.stdout.count("run dir:") == 2


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path, photo_dir, style_path) -> None:
    # The DDP code path (process launch, rank-zero export and logging) without GPUs: gloo backend.
    run_dir = tmp_path / "ddp"
    cmd = [
        *TRAIN,
        *tiny_run_overrides(style_path, photo_dir, steps=4),
        "loss.vgg.weights=random",
        "model=small",
        "trainer.strategy=ddp",
        "trainer.devices=2",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=user_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run dir:") == 1  # printed by rank 0 only
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert load_model(run_dir / "model.pt").config.base_channels == 16

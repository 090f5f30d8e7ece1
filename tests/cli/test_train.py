"""`stylenet-train` as a user runs it, in subprocesses: sweeps, DDP, and every user error ending
in one line naming the setting, exit status 2 and no traceback."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from stylenet.inference.model_file import load_model, read_card
from tests.helpers import PlantedCode, read_metrics, save_tiny_model, tiny_run_overrides

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
    "negative loss weight": (
        ["loss.style_weight=-1"],
        "loss.style_weight=-1: loss weights must be finite and >= 0",
    ),
    "every training photo unreadable": (
        ["data.root={tmp}/junk"],
        "data.root={tmp}/junk: none of its 2 training photos can be read (first: ",
    ),
    "every held-out photo unreadable": (
        ["data.val_root={tmp}/junk"],
        "data.val_root={tmp}/junk: none of its 2 held-out photos can be read (first: ",
    ),
    "crop not a multiple of 4": (
        ["data.image_size=62"],
        "data.image_size=62: training crops must be a multiple of 4",
    ),
    "negative num_workers": (["data.num_workers=-1"], "data.num_workers=-1: must be at least 0"),
    "no steps": (["trainer.max_steps=0"], "trainer.max_steps=0: nothing would be trained"),
    "divergence factor not above 1": (
        ["train.divergence.factor=0.5"],
        "train.divergence.factor=0.5: must be > 1",
    ),
    "seed not a number": (["seed=abc"], "seed=abc: not an integer"),
    "stability noise level not above 0": (
        ["loss.noise_weight=1", "loss.noise_sigma=0"],
        "loss.noise_sigma=0: a noise level must be finite and > 0",
    ),
    "motion zoom not below 1": (
        ["loss.motion_weight=1", "loss.motion_zoom=1.5"],
        "loss.motion_zoom=1.5: must be below 1",
    ),
    "negative learning rate": (["optimizer.lr=-1"], "optimizer.lr=-1: a learning rate must be"),
    "VGG weights file missing": (
        ["$STYLENET_VGG16_WEIGHTS={tmp}/none.safetensors"],
        "cannot read VGG weights {tmp}/none.safetensors: no such file; the path comes from "
        "STYLENET_VGG16_WEIGHTS",
    ),
    "ckpt_path is a model file": (
        ["ckpt_path={tmp}/model.pt"],
        "ckpt_path={tmp}/model.pt: a stylenet model file, not a training checkpoint",
    ),
    "ckpt_path of another network": (
        ["ckpt_path={tmp}/small.ckpt"],
        "ckpt_path={tmp}/small.ckpt: a checkpoint of another network (model.base_channels: 16 "
        "in the checkpoint, 32 here; model.num_residual_blocks: 3 in the checkpoint, 5 here)",
    ),
    "ckpt_path holds pickled code": (
        ["ckpt_path={tmp}/planted.ckpt"],
        "ckpt_path={tmp}/planted.ckpt: it holds a pickled posix.system; stylenet loads tensors",
    ),
    "super-resolution scale not a power of 2": (
        ["task=superres", "scale=3"],
        "scale=3: must be a power of 2 >= 2",
    ),
    "super-resolution crop not a multiple of the scale": (
        ["task=superres", "data.image_size=30"],
        "data.image_size=30 is not a multiple of scale=4",
    ),
    "unknown config key": (["trainer.max_step=5"], "Could not override 'trainer.max_step'"),
    "a style-only setting with task=superres": (
        ["task=superres", "styles=[mosaic]"],
        "Could not override 'styles'",
    ),
}
# Rows Hydra refuses itself, before a job starts: its own message (several lines), exit 2.
HYDRA_ROWS = ("unknown config key", "a style-only setting with task=superres")


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
    (tmp / "junk").mkdir()
    for i in range(3):
        (tmp / "junk" / f"photo{i}.jpg").write_text("not a photo")
    save_tiny_model(tmp)
    small = {"base_channels": 16, "num_residual_blocks": 3}  # model=small's
    torch.save(
        {"state_dict": {}, "global_step": 3, "loops": {}, "stylenet": {"config": small}},
        tmp / "small.ckpt",
    )
    torch.save({"global_step": 3, "state_dict": PlantedCode(tmp / "ran")}, tmp / "planted.ckpt")
    fill = {"tmp": str(tmp)}
    procs = {}
    for name, (overrides, expected) in ROWS.items():
        base = tiny_run_overrides(style_path, photo_dir)
        keys = {o.split("=", 1)[0] for o in overrides}
        args = [o for o in base if o.split("=", 1)[0] not in keys | {k[1:] for k in keys}]
        args += [o.format(**fill) for o in overrides if o[0] not in "-$"]
        args += ["logger=none", f"hydra.run.dir={tmp}/run-{len(procs)}"]
        env = dict(o[1:].format(**fill).split("=", 1) for o in overrides if o[0] == "$")
        proc = subprocess.Popen(
            [*TRAIN, *args],
            env={**user_env(), **env},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs[name] = (proc, args, expected.format(**fill))
    done = {}
    for name, (proc, args, expected) in procs.items():
        out, err = proc.communicate(timeout=600)
        done[name] = (subprocess.CompletedProcess(args, proc.returncode, out, err), expected)
    assert not (tmp / "ran").exists(), "a planted checkpoint ran its code"
    return done


def error_lines(stderr: str) -> list[str]:
    """stderr without the log lines a run prints before it fails (Lightning's seed message)."""
    return [line for line in stderr.splitlines() if line and not line.startswith("Seed set")]


@pytest.mark.parametrize("row", [r for r in ROWS if r not in HYDRA_ROWS])
def test_a_user_error_is_one_line_and_exit_status_2(row: str, rows) -> None:
    proc, expected = rows[row]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert line.startswith("stylenet-train: ") and expected in line, line


@pytest.mark.parametrize("row", HYDRA_ROWS)
def test_a_config_hydra_cannot_compose_exits_2_with_hydras_message(row: str, rows) -> None:
    proc, expected = rows[row]
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def _without_file_permission_override() -> list[str]:
    """A command prefix under which permission bits apply to this user: none for an ordinary
    user; for root, Linux's setpriv dropping the capabilities that let root read any folder."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("running as root without setpriv: permission bits do not apply")
    if probe.returncode:
        pytest.skip(f"running as root and setpriv cannot drop capabilities: {probe.stderr!r}")
    return prefix


def test_a_photo_folder_that_cannot_be_read_is_named(tmp_path, photo_dir, style_path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(photo_dir, photos)
    prefix = _without_file_permission_override()
    args = [*tiny_run_overrides(style_path, photos), "logger=none", f"hydra.run.dir={tmp_path}/r"]
    photos.chmod(0)
    try:
        proc = subprocess.run(
            [*prefix, *TRAIN, *args],
            capture_output=True,
            text=True,
            env=user_env(),
            timeout=600,
        )
    finally:
        photos.chmod(0o755)
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = error_lines(proc.stderr)
    assert line == f"stylenet-train: cannot read folder {photos}: permission denied"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB filesystem (tmpfs), too small for one checkpoint of model=small (3 MB)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        pytest.skip("no mount command")
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True, timeout=30)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_no_partial_checkpoint(
    tmp_path: Path, small_disk: Path, photo_dir, style_path
) -> None:
    run_dir = tmp_path / "run"
    cmd = [
        *TRAIN,
        *tiny_run_overrides(style_path, photo_dir, steps=4),
        "loss.vgg.weights=random",
        "model=small",
        "logger=none",
        f"callbacks.model_checkpoint.dirpath={small_disk}",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=user_env(), timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("stylenet-train:")]
    assert line == f"stylenet-train: no space left on device writing {small_disk}/step0000002.ckpt"
    assert list(small_disk.iterdir()) == []  # no half-written checkpoint, no temporary file
    assert _model_step(run_dir / "model.pt") == 2  # what was learned is on the other disk


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


# --- faults: a bad run stops loudly, a good run is never lost --------------------------------


def _fault_run(tmp_path: Path, photo_dir: Path, style_path: Path, *extra: str) -> list[str]:
    """A small-network run in tmp_path, named run_name=r, with a checkpoint every 3 steps."""
    return [
        *TRAIN,
        *tiny_run_overrides(style_path, photo_dir, steps=40),
        "loss.vgg.weights=random",
        "model=small",
        "logger=csv",
        "trainer.val_check_interval=10",
        "callbacks.model_checkpoint.every_n_train_steps=3",
        "run_name=r",
        *extra,
    ]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _step(path: Path) -> int:
    return int(torch.load(path, weights_only=False, map_location="cpu")["global_step"])


def _model_step(path: Path) -> int:
    return int(read_card(path).training.global_step or 0)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_checkpoint_and_model_at_the_same_step_then_fails(
    tmp_path: Path, photo_dir, style_path, signum: int
) -> None:
    run_dir = tmp_path / "outputs" / "train" / "custom" / "r"
    proc = subprocess.Popen(
        _fault_run(tmp_path, photo_dir, style_path, "trainer.max_steps=100000"),
        cwd=tmp_path,
        env=user_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(run_dir / "checkpoints" / "step0000006.ckpt", proc)
    time.sleep(random.uniform(0, 0.5))
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, stderr[-3000:]
    name = signal.Signals(signum).name
    [line] = [line for line in stderr.splitlines() if line.startswith("stylenet-train:")]
    step = _step(run_dir / "checkpoints" / "last.ckpt")
    assert (
        line == f"stylenet-train: stopped by {name} at step {step}; last.ckpt and model.pt hold it"
    )
    assert step >= 6 and _model_step(run_dir / "model.pt") == step
    record = json.loads((run_dir / "job.json").read_text())  # what a sweep's report reads
    assert (record["status"], record["reason"]) == ("stopped", line.split(": ", 1)[1])


@pytest.mark.slow
def test_sigkill_then_resume_auto_loses_at_most_one_checkpoint_interval(
    tmp_path: Path, photo_dir, style_path
) -> None:
    run_dir = tmp_path / "outputs" / "train" / "custom" / "r"
    ckpts = run_dir / "checkpoints"
    cmd = _fault_run(tmp_path, photo_dir, style_path, "trainer.log_every_n_steps=1")
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=user_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _wait_for(ckpts / "step0000006.ckpt", proc)
    time.sleep(random.uniform(0, 1.0))
    proc.kill()
    proc.communicate(timeout=60)
    newest = max(_step(p) for p in ckpts.glob("*.ckpt"))
    # What a kill -9 during a checkpoint write leaves, and a file planted by someone else: one
    # that claims the newest step and runs code when unpickled.
    stale = ckpts / ".last.ckpt.0123456789ab.tmp"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    marker = tmp_path / "code-ran"
    torch.save({"global_step": 10**6, "x": PlantedCode(marker)}, ckpts / "step9999999.ckpt")
    record = {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}
    assert set(record) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    job = (run_dir / "job.json").read_bytes()  # "running": the kill left no word
    assert json.loads(job)["status"] == "running"

    # The same command again refuses to reuse the folder, and leaves its record as it was.
    again = subprocess.run(
        [*cmd, "seed=1"], cwd=tmp_path, env=user_env(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 2 and "resume=auto continues it" in again.stderr
    assert {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()} == record
    assert (run_dir / "job.json").read_bytes() == job
    # Continuing with another network is refused by name, before anything is built.
    other = subprocess.run(
        [*cmd, "resume=auto", "model=johnson"],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other.returncode == 2, other.stderr[-3000:]
    [line] = [line for line in other.stderr.splitlines() if line.startswith("stylenet-train:")]
    assert "a checkpoint of another network (model.base_channels: 16 in the checkpoint, 32" in line
    # With resume=auto it continues.
    resumed = subprocess.run(
        [*cmd, "resume=auto"],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not marker.exists(), "resume=auto ran the code in a planted checkpoint"
    # (log lines go to stdout, as Hydra configures them)
    assert "resume: ignoring cannot read file" in resumed.stdout
    assert "step9999999.ckpt: it holds a pickled posix.system" in resumed.stdout
    assert f"resume=auto: continuing from {ckpts}" in resumed.stdout
    assert not stale.exists()
    assert _step(ckpts / "last.ckpt") == 40 and _model_step(run_dir / "model.pt") == 40
    assert not list(ckpts.glob("last-v*.ckpt"))  # one last.ckpt
    # Adam's own step counter went on from the checkpoint (optimizer state restored).
    ckpt = torch.load(ckpts / "last.ckpt", weights_only=False)
    assert int(ckpt["optimizer_states"][0]["state"][0]["step"]) == 40
    # One CSV log for the whole run: the first session's rows up to its checkpoint, then the rest.
    # Lightning writes a step's checkpoint before it logs that step's row, so a kill between the
    # two (a few ms) loses that one row (row newest - 1): the only gap allowed.
    steps = sorted({int(r["step"]) for r in read_metrics(run_dir) if r.get("train/total")})
    assert set(range(40)) - {newest - 1} <= set(steps) <= set(range(40)), (newest, steps)
    assert newest >= 6


@pytest.mark.slow
def test_a_diverging_run_exits_1_and_keeps_the_last_good_model(
    tmp_path: Path, photo_dir, style_path
) -> None:
    # lr 1e-3 for 6 steps, then ×1e30: optimizer.lr=1e30 after a good start; and from step 1.
    explode = (
        "+scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,"
        "step_size:6,gamma:1e30}"
    )
    runs = {"late": explode, "early": "optimizer.lr=1e30"}
    procs = {}
    for name, override in runs.items():
        (tmp_path / name).mkdir()
        procs[name] = subprocess.Popen(
            _fault_run(tmp_path, photo_dir, style_path, override),
            cwd=tmp_path / name,
            env=user_env(),
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    stderr = {name: proc.communicate(timeout=600)[1] for name, proc in procs.items()}
    lines = {
        name: [line for line in err.splitlines() if line.startswith("stylenet-train:")]
        for name, err in stderr.items()
    }
    run_dirs = {name: tmp_path / name / "outputs" / "train" / "custom" / "r" for name in runs}

    assert procs["early"].returncode == 1, stderr["early"][-3000:]
    [line] = lines["early"]
    assert "training diverged: the loss is nan at step" in line
    assert "No step was good, so no model was written" in line
    assert not (run_dirs["early"] / "model.pt").exists()
    record = json.loads((run_dirs["early"] / "job.json").read_text())
    assert (record["status"], record["reason"]) == ("diverged", line.split(": ", 1)[1])

    assert procs["late"].returncode == 1, stderr["late"][-3000:]
    [line] = lines["late"]
    good = _model_step(run_dirs["late"] / "model.pt")
    assert f"model.pt holds the weights of step {good}." in line and 6 <= good < 40
    model = load_model(run_dirs["late"] / "model.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # Every checkpoint left to resume from holds a step no later than the model's.
    left = list((run_dirs["late"] / "checkpoints").glob("*.ckpt"))
    assert left and all(_step(p) <= good for p in left)

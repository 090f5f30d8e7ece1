"""`stylenet-sweep-report` and the report at the end of ``stylenet-train -m``: a real 2×2 Hydra
grid of tiny runs (random-weight VGG: about reports, not quality) with one job forced to fail, a
3-trial Optuna search, ``--pick`` written as an experiment config that ``stylenet-train``
composes, and the inputs that are not a sweep."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from PIL import Image

from stylenet.cli.sweep_report import main, report_sweep
from stylenet.evaluation.jobs import JobRecord, write_job_record
from stylenet.evaluation.sweep import (
    SCORE_FILE,
    Sweep,
    SweepJob,
    contact_sheet,
    pareto_front,
    read_sweep,
    write_experiment,
)
from tests.cli.test_train import TRAIN, user_env
from tests.helpers import photo, tiny_run_overrides

REPORT = ["hydra.callbacks.sweep_report.size=64", "hydra.callbacks.sweep_report.num_photos=2"]


def _tiny(style: Path, photos: Path, val: Path) -> list[str]:
    return [
        *tiny_run_overrides(style, photos, steps=2),
        "loss.vgg.weights=random",
        "model=small",
        "logger=csv",
        f"data.val_root={val}",
        *REPORT,
    ]


@pytest.fixture(scope="module")
def val_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("val")
    for i, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
        photo(root / f"v{i}.png", size=(64, 48), colour=colour)
    return root


@pytest.fixture(scope="module")
def grid(tmp_path_factory, photo_dir: Path, style_path: Path, val_photos: Path):
    """A 2×2 sweep (style × TV weight) whose job 3 is refused: its folder already holds a
    checkpoint of another run."""
    sweep = tmp_path_factory.mktemp("grid") / "sweep"
    (sweep / "3" / "checkpoints").mkdir(parents=True)
    (sweep / "3" / "checkpoints" / "last.ckpt").write_bytes(b"another run's")
    cmd = [*TRAIN, "-m", *_tiny(style_path, photo_dir, val_photos)]
    cmd += ["loss.style_weight=1,2", "loss.tv_weight=1,10", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=user_env(), timeout=900)
    return sweep, proc


@pytest.mark.slow
def test_a_grid_with_a_failed_job_is_reported_at_its_end(grid) -> None:
    sweep, proc = grid
    assert proc.returncode == 2, proc.stderr[-3000:]  # job 3 failed: a user error
    with (sweep / "sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]
    assert [(r["loss.style_weight"], r["loss.tv_weight"]) for r in rows] == [
        ("1", "1"),
        ("1", "10"),
        ("2", "1"),
        ("2", "10"),
    ]
    assert [r["status"] for r in rows] == ["finished"] * 3 + ["failed"]
    assert "already holds checkpoints of an earlier run" in rows[3]["reason"]
    assert rows[3]["style"] == ""  # a failed job has no scores
    for row in rows[:3]:
        assert float(row["style"]) > 0 and float(row["content"]) > 0
        assert 0 < float(row["ssim"]) <= 1 and float(row["lpips"]) >= 0
        assert row["steps"] == "2" and float(row["seconds"]) > 0
    assert any(r["pareto"] == "yes" for r in rows[:3])
    assert "| 3 | 2 | 10 | failed |" in (sweep / "sweep.md").read_text()
    with Image.open(sweep / "pareto.png") as plot:
        assert plot.format == "PNG" and plot.width > 300
    with Image.open(sweep / "contact_sheet.jpg") as sheet:
        assert sheet.format == "JPEG"
    # Each job's scores are kept in its folder for the next report.
    assert [(sweep / n / SCORE_FILE).is_file() for n in "0123"] == [True] * 3 + [False]


@pytest.mark.slow
def test_the_contact_sheet_has_a_labelled_cell_per_job_on_the_sweeps_axes(grid) -> None:
    sweep, _ = grid
    report = report_sweep(sweep, progress=False, count=2, size=64)
    cells = {c.job: c for c in report.cells}
    assert sorted(c for c in cells if c is not None) == ["0", "1", "2", "3"]
    assert cells["1"].label.startswith("#1 style_weight=1 tv_weight=10\nstyle ")
    assert cells["3"].label.startswith("#3 style_weight=2 tv_weight=10\nfailed: ")
    # Rows: style weight; columns: TV weight; the held-out photos head the sheet.
    assert cells["0"].box[1] == cells["1"].box[1] < cells["2"].box[1] == cells["3"].box[1]
    assert cells["0"].box[0] == cells["2"].box[0] < cells["1"].box[0] == cells["3"].box[0]
    assert cells[None].box[1] < cells["0"].box[1]
    with Image.open(report.files["contact_sheet.jpg"]) as sheet:
        sheet = sheet.convert("L")

        def spread(box: tuple[int, int, int, int]) -> int:
            low, high = sheet.crop(box).getextrema()
            return high - low

        assert spread(cells["0"].box) > 40  # a stylized photo
        assert spread(cells["3"].box) < 10  # the failed job's empty cell
    assert report.unscored == []


@pytest.mark.slow
def test_pick_writes_an_experiment_config_that_training_composes(
    grid, tmp_path: Path, capsys, style_path: Path
) -> None:
    sweep, _ = grid
    configs = tmp_path / "configs"
    args = [str(sweep), "-q", "--size", "64", "--num-photos", "2", "--configs", str(configs)]
    assert main([*args, "--pick", "3"]) == 2
    assert "job 3 is failed" in capsys.readouterr().err
    assert main([*args, "--pick", "best", "--max-content", "1e-9"]) == 2
    assert "no finished job has content ≤ 1e-09" in capsys.readouterr().err

    assert main([*args, "--pick", "best"]) == 0
    out = capsys.readouterr().out
    path = configs / "experiment" / f"{style_path.stem}_tuned.yaml"
    assert f"wrote {path}" in out
    rows = list(csv.DictReader((sweep / "sweep.csv").open()))
    best = min((r for r in rows if r["style"]), key=lambda r: float(r["style"]))
    assert f"picked #{best['job']} " in out
    assert main([*args, "--pick", "best"]) == 2  # the config exists: not overwritten
    assert "--overwrite" in capsys.readouterr().err

    command = shlex.split(out.split("train it for real with:\n  ")[1].splitlines()[0])
    searchpath = f"hydra.searchpath=[file://{configs.resolve()}]"
    assert command[:3] == ["stylenet-train", searchpath, f"experiment={path.stem}"]
    cfg = _composed(*command[1:3], "data.root=PHOTOS")
    assert cfg["loss"]["style_weight"] == float(best["loss.style_weight"])
    assert cfg["loss"]["tv_weight"] == float(best["loss.tv_weight"])
    assert cfg["style"]["image"] == str(style_path)


def _composed(*overrides: str) -> dict:
    """The job config ``stylenet-train OVERRIDES --cfg job`` composes."""
    proc = subprocess.run(
        [*TRAIN, *overrides, "--cfg", "job"],
        capture_output=True,
        text=True,
        env=user_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return yaml.safe_load(proc.stdout)


@pytest.mark.slow
def test_the_report_goes_to_wandb_when_asked(grid, monkeypatch) -> None:
    sweep, _ = grid
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(sweep), "-q", "--size", "64", "--num-photos", "2", "--wandb", "on"]) == 0
    [run] = list((sweep / "wandb").glob("offline-run-*"))
    logged = b"".join(p.read_bytes() for p in run.rglob("*.wandb"))
    assert b"sweep/table" in logged and b"sweep/contact_sheet" in logged


@pytest.mark.slow
def test_a_three_trial_optuna_search_is_reported(
    tmp_path: Path, photo_dir: Path, style_path: Path, val_photos: Path
) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "search"
    cmd = [*TRAIN, "-m", "hparams_search=optuna_style", *_tiny(style_path, photo_dir, val_photos)]
    cmd += ["hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2"]
    cmd += [f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=user_env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((sweep / "sweep.csv").open()))
    assert [r["status"] for r in rows] == ["finished"] * 3
    # Drawn from the log-scale ranges of configs/hparams_search/optuna_style.yaml.
    for row in rows:
        assert 0.05 <= float(row["loss.style_weight"]) <= 5
        assert 0.1 <= float(row["loss.tv_weight"]) <= 100
    # What Optuna minimised is what each job recorded: its held-out terms at weight 1.
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    records = [json.loads((sweep / r["job"] / "job.json").read_text()) for r in rows]
    objectives = [
        [rec["metrics"]["val/raw/style"], rec["metrics"]["val/raw/content"]] for rec in records
    ]
    assert results["solutions"] and all(s["values"] in objectives for s in results["solutions"])
    report = report_sweep(sweep, progress=False, count=2, size=64)
    assert not report.sweep.grid  # a search: its cells in job order, not on axes
    assert sorted(c.job for c in report.cells if c.job is not None) == ["0", "1", "2"]


# --- inputs that are not a sweep --------------------------------------------------------------


def _job(folder: Path, *overrides: str) -> None:
    write_job_record(folder, JobRecord("failed", overrides=list(overrides), reason="x"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "notes.txt").write_text("hi"), "is not a sweep: no job folders"),
        (lambda d: (d / "multirun.yaml").write_text("hydra: {}\n"), "a sweep with no jobs yet"),
        (
            lambda d: (_job(d / "0", "a=1", "b=2"), _job(d / "1", "a=2", "c=3")),
            "jobs 0 and 1 were started with different settings (1 lacks b; 1 has c): not one",
        ),
        (lambda d: None, "is not a folder"),
    ],
    ids=["not a sweep", "empty sweep", "different swept keys", "a file"],
)
def test_what_is_not_a_sweep_is_one_line(tmp_path: Path, capsys, make, message: str) -> None:
    folder = tmp_path / "sweep"
    if message == "is not a folder":
        folder.write_text("a file")
    else:
        folder.mkdir()
        make(folder)
    assert main([str(folder), "-q"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("stylenet-sweep-report: ") and message in line, line
    assert not (folder.is_dir() and (folder / "sweep.md").exists())


def test_a_running_sweep_and_a_damaged_record_are_reported_as_they_are(
    tmp_path: Path, capsys
) -> None:
    _job(tmp_path / "0", "a=1")
    write_job_record(tmp_path / "1", JobRecord("running", overrides=["a=2"]))
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "job.json").write_text("{not json")
    sweep = read_sweep(tmp_path)
    assert [(j.name, j.status) for j in sweep.jobs] == [
        ("0", "failed"),
        ("1", "running"),
        ("2", "unknown"),
    ]
    assert "2/job.json: not a readable job record" in (sweep.jobs[2].reason or "")
    assert sweep.swept == ["a"]
    # No photos to stylize (no job trained, none names any): the table is all there is.
    assert main([str(tmp_path), "-q"]) == 0
    assert "| 1 | 2 | running |" in (tmp_path / "sweep.md").read_text()
    assert not (tmp_path / "contact_sheet.jpg").exists()


def test_the_pareto_front_is_the_jobs_no_other_beats_on_both() -> None:
    def job(name: str, style: float, content: float) -> SweepJob:
        return SweepJob(
            name, Path(name), {}, "finished", scores={"style": style, "content": content}
        )

    jobs = [job("a", 1, 5), job("b", 2, 2), job("c", 3, 3), job("d", 5, 1), job("e", 2, 2)]
    assert [j.name for j in pareto_front(jobs)] == ["d", "b", "e", "a"]  # c: beaten by b


def test_a_picked_named_style_keeps_its_style_and_loss_preset(tmp_path: Path) -> None:
    overrides = {"style": "mosaic", "loss": "gatys", "loss.style_weight": "0.3"}
    overrides |= {"loss.tv_weight": "3.0", "data.root": "photos"}
    scores = {"style": 1.0, "content": 2.0, "tv": 0.1, "lpips": 0.3, "ssim": 0.5}
    job = SweepJob("4", tmp_path / "4", overrides, "finished", steps=300, scores=scores)
    sweep = Sweep(tmp_path, [job], ["loss.style_weight", "loss.tv_weight"], {})
    path = write_experiment(sweep, job, "job 4", tmp_path / "configs")
    assert path == tmp_path / "configs" / "experiment" / "mosaic_tuned.yaml"
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'configs'}]"
    cfg = _composed(searchpath, "experiment=mosaic_tuned", "data.root=photos")
    assert (cfg["loss"]["style_weight"], cfg["loss"]["tv_weight"]) == (0.3, 3.0)
    assert cfg["style"]["image"].endswith("mosaic.jpg")
    assert "relu5_1" in cfg["loss"]["style_layers"]  # loss=gatys, as the job had
    assert cfg["data"]["root"] == "photos"  # the data and the budget stay the user's


def test_a_grid_not_yet_started_has_every_declared_point(tmp_path: Path) -> None:
    """The grid's values come from Hydra's multirun.yaml: the sheet shows the points no job
    has reached yet (as "not started" cells), on the axes they will have."""
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task: [style=mosaic, 'loss.style_weight=0.25,0.5,1.0']\n"
        "  sweeper:\n    params:\n      loss.tv_weight: 1,10\n"
    )
    write_job_record(
        tmp_path / "0",
        JobRecord(
            "running", overrides=["style=mosaic", "loss.style_weight=0.25", "loss.tv_weight=1"]
        ),
    )
    sweep = read_sweep(tmp_path)
    assert sweep.swept == ["loss.style_weight", "loss.tv_weight"] and sweep.grid
    assert sweep.axes == (["0.25", "0.5", "1.0"], ["1", "10"])
    sheet, cells = contact_sheet(sweep, [Image.new("RGB", (40, 30), (200, 10, 10))], thumb=40)
    assert [c.job for c in cells] == [None, "0"]
    # The header row, then three rows of two cells (five of them "not started").
    assert sheet.height > 4 * 40 and sheet.width > 2 * 40

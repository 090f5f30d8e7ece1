"""plan: inputs map to outputs, and every refusal comes before any work."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from stylenet.errors import ConfigError, OutputExistsError
from stylenet.inference import api
from stylenet.inference.api import load
from stylenet.inference.batch import Options, plan, stylize_all
from tests.helpers import photo


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    photo(root / "a.jpg")
    photo(root / "sub" / "b.png")
    (root / "notes.txt").write_text("not a photo")
    return root


def test_one_file_to_a_file_and_folders_mirrored(inputs: Path, tmp_path: Path) -> None:
    [job] = plan([inputs / "a.jpg"], tmp_path / "styled.png").jobs
    assert (job.src, job.dst, job.video) == (inputs / "a.jpg", tmp_path / "styled.png", False)
    work = plan([inputs], tmp_path / "out")
    assert {j.dst for j in work.jobs} == {tmp_path / "out" / "a.jpg", tmp_path / "out/sub/b.png"}
    # Several inputs: one subfolder each, so same-named files cannot collide.
    work = plan([inputs, inputs / "a.jpg"], tmp_path / "out")
    assert {j.dst for j in work.jobs} == {
        tmp_path / "out" / "in" / "a.jpg",
        tmp_path / "out" / "in" / "sub" / "b.png",
        tmp_path / "out" / "a.jpg",
    }


def test_missing_and_empty_inputs_are_named_not_fatal(inputs: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    work = plan([inputs, tmp_path / "nope.jpg", tmp_path / "empty"], tmp_path / "out")
    assert len(work.jobs) == 2
    assert [src.name for src, _ in work.missing] == ["nope.jpg", "empty"]


def test_refusals(inputs: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is an input"):
        plan([inputs / "a.jpg"], inputs / "a.jpg")
    other = photo(tmp_path / "x" / "a.jpg")
    with pytest.raises(ConfigError, match="same output"):
        plan([inputs / "a.jpg", other], tmp_path / "out")
    with pytest.raises(ConfigError, match="image format"):
        plan([inputs / "a.jpg"], tmp_path / "styled.txt")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.jpg").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match=r"a\.jpg exists.*--overwrite"):
        plan([inputs], tmp_path / "out")
    assert len(plan([inputs], tmp_path / "out", overwrite=True).jobs) == 2


def test_photos_go_in_smaller_batches_or_tiles_when_memory_is_short(
    model_path: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stylizer = load(model_path, device="cpu")
    for name in "abc":
        photo(tmp_path / "in" / f"{name}.png", size=(96, 64))
    need = stylizer.untiled_bytes(64, 96)
    batches: list[int] = []
    untiled = stylizer.stylize_batch

    def recording(images: torch.Tensor, **kwargs: object) -> torch.Tensor:
        batches.append(images.shape[0])
        return untiled(images, **kwargs)

    monkeypatch.setattr(stylizer, "stylize_batch", recording)
    monkeypatch.setattr(api, "free_memory", lambda device: 4 * need)  # room for 2 per pass
    summary = stylize_all(stylizer, plan([tmp_path / "in"], tmp_path / "out"), Options())
    assert summary.done == 3 and batches == [2, 1]

    batches.clear()
    monkeypatch.setattr(api, "free_memory", lambda device: need)  # not even one
    with caplog.at_level(logging.WARNING, logger="stylenet.inference.batch"):
        summary = stylize_all(stylizer, plan([tmp_path / "in"], tmp_path / "tiled"), Options())
    assert summary.done == 3 and batches == []  # each photo went through the tiled path
    assert "3 photo(s) of 96×64 need more memory untiled than is free" in caplog.text
    assert sorted(p.name for p in (tmp_path / "tiled").iterdir()) == ["a.png", "b.png", "c.png"]

"""plan: inputs map to outputs, and every refusal comes before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylenet.errors import ConfigError, OutputExistsError
from stylenet.inference.batch import plan
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

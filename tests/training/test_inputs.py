"""check_inputs: every file a training config names is checked before anything is built, and
the error names the setting."""

from __future__ import annotations

import pytest

from stylenet.errors import ConfigError
from stylenet.training.run import train
from tests.helpers import ComposeTrain, tiny_run_overrides


def test_bad_inputs_fail_before_training_naming_the_setting(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (tiny_run_overrides(style_path, empty), rf"no images .* found under {empty}"),
        (tiny_run_overrides(tmp_path / "nope.jpg", photo_dir), r"^style.image=.*nope.jpg: no such"),
        (tiny_run_overrides(tmp_path, photo_dir), r"^style.image=.*: is a directory"),
        (tiny_run_overrides(style_path, tmp_path / "x"), r"^data.root=.*x: no such folder"),
        (
            [*tiny_run_overrides(style_path, photo_dir), f"ckpt_path={tmp_path / 'last.ckpt'}"],
            r"^ckpt_path=.*last.ckpt: no such file",
        ),
    ]
    for i, (overrides, message) in enumerate(cases):
        cfg = compose_train([*overrides, "logger=none"], tmp_path / f"r{i}")
        with pytest.raises(ConfigError, match=message):
            train(cfg)
        assert not (tmp_path / f"r{i}" / "model.pt").exists()

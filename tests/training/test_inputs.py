"""check_inputs: every file a training config names is checked before anything is built, and
the error names the setting."""

from __future__ import annotations

import pytest

from stylenet.errors import ConfigError
from stylenet.training.inputs import check_inputs, check_settings
from stylenet.training.run import train
from stylenet.training.style_setup import resolve_styles
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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.style_weight=-1", r"^loss.style_weight=-1: loss weights must be finite and >= 0"),
        ("loss.tv_weight=nan", r"^loss.tv_weight=nan: loss weights must be finite"),
        ("loss.content_weight=inf", r"^loss.content_weight=inf: "),
        ("loss.style_layers.relu2_2=-0.5", r"^loss.style_layers.relu2_2=-0.5: "),
        ("optimizer.lr=0", r"^optimizer.lr=0: a learning rate must be finite and > 0"),
        ("optimizer.lr=-1e-3", r"^optimizer.lr=-0.001: "),
        ("resume=yes", r"^resume=yes: expected auto"),
        ("ckpt_path=x.ckpt resume=auto", r"resume=auto or ckpt_path=\.\.\., not both"),
    ],
)
def test_settings_that_would_waste_a_run_are_refused(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path, override: str, message: str
) -> None:
    overrides = [*tiny_run_overrides(style_path, photo_dir), "logger=none", *override.split()]
    with pytest.raises(ConfigError, match=message):
        check_settings(compose_train(overrides, tmp_path / "run"))


def test_a_run_folder_with_checkpoints_is_reused_only_with_resume_auto(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path
) -> None:
    overrides = [*tiny_run_overrides(style_path, photo_dir), "logger=none"]
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    check_settings(compose_train(overrides, tmp_path / "run"))  # an empty folder is fine
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"already holds checkpoints .* resume=auto continues"):
        check_settings(compose_train(overrides, tmp_path / "run"))
    check_settings(compose_train([*overrides, "resume=auto"], tmp_path / "run"))


def test_styles_come_from_named_configs_paths_or_records(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path, monkeypatch
) -> None:
    monkeypatch.setenv("STYLENET_STYLE_DIR", str(tmp_path / "paintings"))
    base = [*tiny_run_overrides(style_path, photo_dir), "logger=none"]
    cfg = compose_train(
        [
            *base,
            f"styles=[mosaic,{style_path},{{name:mine,image:{style_path},size:48,style_scale:2}},"
            "{name:candy,style_scale:1.5}]",
        ],
        tmp_path / "run",
    )
    assert resolve_styles(cfg) == [
        {"name": "mosaic", "image": str(tmp_path / "paintings" / "mosaic.jpg"), "size": 256},
        {"name": style_path.stem, "image": str(style_path), "size": 64},  # style.size
        {"name": "mine", "image": str(style_path), "size": 48, "style_scale": 2},
        {"name": "candy", "image": str(tmp_path / "paintings" / "candy.jpg"), "size": 256}
        | {"style_scale": 1.5},  # a named config with a key of its own
    ]
    # The one style of `style` when `styles` is empty.
    assert resolve_styles(compose_train(base, tmp_path / "run")) == [
        {"name": "custom", "image": str(style_path), "size": 64}
    ]
    with pytest.raises(ConfigError, match=r"each style may appear once"):
        resolve_styles(compose_train([*base, f"styles=[{style_path},{style_path}]"], tmp_path))
    # A missing painting names the style and where it was looked for.
    with pytest.raises(ConfigError, match=r"^styles: mosaic: image=.*mosaic.jpg: no such file"):
        check_inputs(compose_train([*base, f"styles=[mosaic,{style_path}]"], tmp_path / "r2"))

"""The loss terms as modules: their names are defined once and agree with the configs; each reads
only what it declares; the names load without torchvision."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import stylenet
from stylenet.losses import (
    TERM_NAMES,
    ContentLoss,
    PerceptualLoss,
    PixelLoss,
    StyleLoss,
    TermInputs,
    TotalVariation,
    gram_matrix,
    pixel_loss,
    total_variation,
)

CONFIGS = Path(stylenet.__file__).parent.parent / "configs" / "loss"


def test_each_term_name_is_a_loss_keyword_and_a_config_key() -> None:
    assert TERM_NAMES == ("content", "style", "tv", "pixel", "noise", "motion")
    keywords = inspect.signature(PerceptualLoss).parameters
    presets = sorted(CONFIGS.glob("*.yaml"))
    assert presets
    for name in TERM_NAMES:
        assert f"{name}_weight" in keywords
        for preset in presets:
            assert f"{name}_weight" in OmegaConf.load(preset), preset.name


def test_the_term_names_load_without_torchvision() -> None:
    # stylenet-train checks its config's loss weights (named after the terms) before it pays
    # for torchvision and Lightning.
    code = (
        "import sys\n"
        "from stylenet.losses import TERM_NAMES\n"
        "import stylenet.training.inputs\n"
        "print(sorted(m for m in ('torchvision', 'pytorch_lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _inputs(output: torch.Tensor, target: torch.Tensor, **kwargs: object) -> TermInputs:
    fields = {"features": {}, "target_features": {}, "style_index": None, **kwargs}
    return TermInputs(output, target, **fields)  # type: ignore[arg-type]


def test_tv_and_pixel_need_no_vgg() -> None:
    output, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    for term in (TotalVariation(2.0), PixelLoss(3.0)):
        assert term.layers == term.target_layers == ()
    assert torch.equal(TotalVariation(2.0)(_inputs(output, target)), 2.0 * total_variation(output))
    assert torch.equal(PixelLoss(3.0)(_inputs(output, target)), 3.0 * pixel_loss(output, target))


def test_content_and_style_declare_their_layers() -> None:
    content = ContentLoss(["relu2_2"], 1.0)
    assert content.layers == content.target_layers == ("relu2_2",)
    style = StyleLoss({"relu1_2": 1.0, "relu2_2": 0.5}, 1.0)
    assert style.layers == ("relu1_2", "relu2_2") and style.target_layers == ()
    with pytest.raises(ValueError, match="at least one layer"):
        ContentLoss([], 1.0)


def test_style_targets_are_grams_in_non_persistent_buffers() -> None:
    style = StyleLoss({"relu1_2": 1.0}, 2.0)
    output = torch.rand(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match="set_style"):
        style(_inputs(output, output, features={"relu1_2": torch.rand(2, 4, 8, 8)}))
    paintings = [{"relu1_2": torch.rand(1, 4, 8, 8)}, {"relu1_2": torch.rand(1, 4, 6, 6)}]
    style.set_targets(iter(paintings), torch.tensor([1.0, 2.0]))
    assert style.num_styles == 2 and style.state_dict() == {}
    expected = torch.cat([gram_matrix(p["relu1_2"]) for p in paintings])
    assert torch.equal(style.target_gram("relu1_2"), expected)
    assert torch.equal(style.target_gram("relu1_2", torch.tensor([1])), expected[1:])

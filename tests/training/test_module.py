"""StyleTransferModule on its own (no Trainer run): the loss network stays frozen and out of the
optimizer and checkpoints, steps return the weighted total, validation draws the grid."""

from __future__ import annotations

import contextlib
from functools import partial
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import torch

from stylenet.errors import ConfigError
from stylenet.inference.model_card import ModelCard
from stylenet.losses import PerceptualLoss, VGG16Features
from stylenet.models import TransformerNet
from stylenet.training.style import StyleTransferModule


@pytest.fixture
def module(style_path: Path, tmp_path: Path) -> StyleTransferModule:
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOMLY"):
        loss = PerceptualLoss(
            content_weight=1.0,
            style_weight=0.5,
            tv_weight=10.0,
            vgg=partial(VGG16Features, weights="random"),
        )
    module = StyleTransferModule(
        TransformerNet(base_channels=4, num_residual_blocks=1),
        loss,
        style_image=str(style_path),
        style_size=32,
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=10),
        num_log_images=2,
        image_dir=str(tmp_path / "images"),
    )
    # What a Trainer would provide, and what the module reads from it.
    trainer = MagicMock(sanity_checking=False, is_global_zero=True, loggers=[], global_step=7)
    module.trainer = trainer
    module.log = MagicMock()  # type: ignore[method-assign]
    return module


def test_only_the_transform_network_is_optimized(module: StyleTransferModule) -> None:
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]
    params = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert params == {id(p) for p in module.net.parameters()}
    assert not any(p.requires_grad for p in module.loss.vgg.parameters())
    assert scheduler["interval"] == "step"
    assert isinstance(scheduler["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_the_loss_network_stays_frozen_in_training_mode(module: StyleTransferModule) -> None:
    module.train()
    assert module.net.training and not module.loss.vgg.training
    # The style targets were computed when the module was built.
    assert module.loss.target_gram("relu3_3").shape == (1, 256, 256)


def test_a_training_step_returns_the_weighted_total_and_logs_each_term(
    module: StyleTransferModule,
) -> None:
    images = torch.rand(2, 3, 32, 32)
    total = module.training_step(images, 0)
    expected = module.loss(module.net(images), images)
    torch.testing.assert_close(total, expected["total"])
    total.backward()
    assert all(p.grad is not None for p in module.net.parameters())
    assert all(p.grad is None for p in module.loss.vgg.parameters())
    logged = {call.args[0] for call in module.log.call_args_list}  # type: ignore[attr-defined]
    assert logged == {"train/content", "train/style", "train/tv", "train/total"}


def test_validation_logs_terms_per_epoch_and_saves_the_grid(
    module: StyleTransferModule, tmp_path: Path
) -> None:
    module.eval()
    with torch.no_grad():
        module.validation_step(torch.rand(3, 3, 32, 32), 0)
    calls = module.log.call_args_list  # type: ignore[attr-defined]
    kwargs = {call.args[0]: call.kwargs for call in calls}
    values = {call.args[0]: float(call.args[1]) for call in calls}
    terms = {"content", "style", "tv"}
    assert set(kwargs) == {f"val/{t}" for t in [*terms, "total"]} | {f"val/raw/{t}" for t in terms}
    # val/raw/<term>: the term at weight 1, comparable between runs of different weights.
    for name, term in module.loss.terms.items():
        assert values[f"val/raw/{name}"] == pytest.approx(values[f"val/{name}"] / term.weight)
    assert all(k["on_epoch"] and not k["on_step"] and k["sync_dist"] for k in kwargs.values())
    (grid,) = (tmp_path / "images").iterdir()
    assert grid.name == "val_step0000007.png"


def test_checkpoints_hold_the_network_and_its_config_not_the_vgg(
    module: StyleTransferModule,
) -> None:
    state = module.state_dict()
    assert any(k.startswith("net.") for k in state)
    assert not any(k.startswith("loss.vgg") for k in state)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    card = ModelCard.from_dict(checkpoint["stylenet"]["card"])
    assert (card.network, card.task, card.scale) == ("TransformerNet", "style", 1)
    assert card.config == {"base_channels": 4, "num_residual_blocks": 1, "num_styles": 1}
    assert card.styles[0].image == str(Path(module.style_image).resolve())
    assert card.training.global_step == 7


def _losses_over_steps(
    module: StyleTransferModule, batches: list[torch.Tensor], **autocast
) -> list[float]:
    optimizer = torch.optim.Adam(module.net.parameters(), lr=1e-2)
    losses = []
    for images in batches:
        with torch.autocast("cpu", **autocast) if autocast else contextlib.nullcontext():
            total = module.train_terms(images, images)["total"]
        total.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(total.detach()))
    return losses


@pytest.mark.slow
def test_compiled_channels_last_and_autocast_steps_match_eager_fp32(
    style_path: Path, vgg16_weights: str
) -> None:
    """Three Adam steps from the same weights on the same photos: the compiled step and the
    channels-last step track eager fp32 to 1e-4 (relative), bf16 autocast, eager or compiled
    (trainer=cpu's choice on CPUs with fast bf16), to 3e-2."""

    def build(**kwargs) -> StyleTransferModule:
        torch.manual_seed(0)
        loss = PerceptualLoss(
            style_layers=["relu1_2", "relu2_2"],
            style_weight=0.5,
            tv_weight=10.0,
            vgg=partial(VGG16Features, weights=vgg16_weights),
        )
        net = TransformerNet(base_channels=8, num_residual_blocks=1)
        return StyleTransferModule(
            net,
            loss,
            style_image=str(style_path),
            style_size=32,
            optimizer=partial(torch.optim.Adam),
            **kwargs,
        )

    gen = torch.Generator().manual_seed(1)
    batches = [torch.rand(2, 3, 32, 32, generator=gen) for _ in range(3)]
    eager = _losses_over_steps(build(), batches)
    compiled_module = build(compile=True)
    compiled = _losses_over_steps(compiled_module, batches)
    assert compiled_module._compiled_terms is not None  # the compiled path ran
    assert list(compiled_module.state_dict()) == list(build().state_dict())  # same names
    channels_last = _losses_over_steps(build(channels_last=True), batches)
    bf16 = _losses_over_steps(build(), batches, dtype=torch.bfloat16)
    bf16_compiled = _losses_over_steps(build(compile=True), batches, dtype=torch.bfloat16)
    assert eager[2] < eager[0]  # it trains
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=0)
    torch.testing.assert_close(channels_last, eager, rtol=1e-4, atol=0)
    torch.testing.assert_close(bf16, eager, rtol=3e-2, atol=0)
    torch.testing.assert_close(bf16_compiled, eager, rtol=3e-2, atol=0)


# --- several styles in one network ------------------------------------------------------------


@pytest.fixture
def multi_module(tmp_path: Path) -> StyleTransferModule:
    from PIL import Image

    images = []
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        images.append(str(tmp_path / f"s{i}.png"))
        Image.new("RGB", (40, 32), colour).save(images[-1])
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOMLY"):
        loss = PerceptualLoss(vgg=partial(VGG16Features, weights="random"))
    module = StyleTransferModule(
        TransformerNet(base_channels=4, num_residual_blocks=1, num_styles=3),
        loss,
        style_image=images,
        style_size=[32, 32, None],
        style_names=["red", "green", "blue"],
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        num_log_images=2,
        image_dir=str(tmp_path / "images"),
    )
    module.trainer = MagicMock(
        sanity_checking=False, is_global_zero=True, loggers=[], global_step=4
    )
    module.log = MagicMock()  # type: ignore[method-assign]
    return module


def test_each_style_trains_equally_often_one_style_per_batch(multi_module) -> None:
    rounds = [[multi_module.style_of_step(s) for s in range(r * 3, r * 3 + 3)] for r in range(6)]
    assert all(sorted(r) == [0, 1, 2] for r in rounds)  # each style once per round
    assert len({tuple(r) for r in rounds}) > 1  # in a shuffled order
    assert rounds == [
        [multi_module.style_of_step(s) for s in range(r * 3, r * 3 + 3)] for r in range(6)
    ]
    seen = []
    real_loss = multi_module.loss.forward
    multi_module.loss.forward = lambda out, photos, style, **network: (
        seen.append(style) or real_loss(out, photos, style, **network)
    )
    multi_module.training_step(torch.rand(2, 3, 32, 32), 0)
    (style,) = seen
    assert style.tolist() == [multi_module.style_of_step(4)] * 2


def test_validation_reports_every_style_and_draws_photos_by_styles(multi_module, tmp_path) -> None:
    assert multi_module.loss.target_gram("relu1_2").shape == (3, 64, 64)
    multi_module.eval()
    with torch.no_grad():
        multi_module.validation_step(torch.rand(2, 3, 32, 32), 0)
    logged = {call.args[0]: call.args[1] for call in multi_module.log.call_args_list}  # type: ignore[attr-defined]
    for name in ("red", "green", "blue"):
        assert {f"val/{name}/style", f"val/{name}/content", f"val/{name}/total"} <= set(logged)
    mean = torch.stack([logged[f"val/{n}/style"] for n in ("red", "green", "blue")]).mean()
    torch.testing.assert_close(logged["val/style"], mean)
    assert logged["val/red/style"] != logged["val/blue/style"]
    (grid,) = (tmp_path / "images").iterdir()
    from PIL import Image

    assert Image.open(grid).size == (4 * 32 + 5 * 4, 2 * 32 + 3 * 4)  # photo + 3 styles, 2 rows
    checkpoint: dict = {}
    multi_module.on_save_checkpoint(checkpoint)
    card = ModelCard.from_dict(checkpoint["stylenet"]["card"])
    assert card.style_names(3) == ["red", "green", "blue"] and card.config["num_styles"] == 3


def test_style_images_must_match_the_network(style_path: Path) -> None:
    with pytest.warns(UserWarning, match="RANDOMLY"):
        loss = PerceptualLoss(vgg=partial(VGG16Features, weights="random"))
    with pytest.raises(ConfigError, match=r"carries 3 style\(s\) but 1 style images"):
        StyleTransferModule(
            TransformerNet(base_channels=4, num_residual_blocks=1, num_styles=3),
            loss,
            style_image=str(style_path),
            optimizer=partial(torch.optim.Adam),
        )

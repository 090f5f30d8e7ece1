"""Sample inputs that need no download: the drawn stained glass and the photos in PyPI packages."""

from __future__ import annotations

import numpy as np
from PIL import Image

from stylenet.io.samples import package_photos, stained_glass


def test_stained_glass_is_deterministic_and_colourful() -> None:
    a, b = stained_glass(64, seed=3), stained_glass(64, seed=3)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != stained_glass(64, seed=4).tobytes()
    assert len(np.unique(np.asarray(a).reshape(-1, 3), axis=0)) > 20


def test_package_photos_are_real_colour_photos(tmp_path) -> None:
    photos = package_photos(tmp_path, max_side=64)
    assert len(photos) >= 5
    for p in photos:
        img = Image.open(p)
        assert img.mode == "RGB" and max(img.size) <= 64

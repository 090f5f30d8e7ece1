"""Photo folders and the data module: bad files skipped, square crops, a stable split."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stylenet.training.data import PhotoDataModule, PhotoFolder, split_files


def _photo(path: Path, w: int = 48, h: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _plant_bad_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buf, format="JPEG"
    )
    data = buf.getvalue()
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    text = folder / "text.jpg"
    text.write_text("definitely not a JPEG\n")
    return [truncated, empty, text]


@pytest.fixture
def mixed_folder(tmp_path: Path) -> tuple[Path, list[Path], list[Path]]:
    root = tmp_path / "photos"
    good = [_photo(root / f"{i:02d}.jpg", w=40 + 8 * i, h=30 + 4 * i, seed=i) for i in range(4)] + [
        _photo(root / "nested" / "deeper" / "x.png", seed=9)
    ]
    bad = _plant_bad_files(root / "nested")
    return root, good, bad


# --- PhotoFolder ------------------------------------------------------------------------------


def test_bad_files_skipped_for_a_whole_epoch(
    mixed_folder: tuple[Path, list[Path], list[Path]], caplog: pytest.LogCaptureFixture
) -> None:
    _, good, bad = mixed_folder
    ds = PhotoFolder(sorted(good + bad), image_size=16, train=True)
    caplog.set_level(logging.WARNING, logger="stylenet.training.data")

    for _ in range(2):  # the second epoch must not warn again
        batches = list(DataLoader(ds, batch_size=3, shuffle=True, num_workers=0))
        assert sum(len(b) for b in batches) == len(good) + len(bad)
        for b in batches:
            assert b.dtype == torch.float32 and b.shape[1:] == (3, 16, 16)
            assert b.min() >= 0.0 and b.max() <= 1.0

    assert ds.skipped == set(bad)
    assert ds.num_skipped == 3
    records = [r for r in caplog.records if r.name == "stylenet.training.data"]
    assert len(records) == 3
    for path in bad:
        assert sum(str(path) in r.getMessage() for r in records) == 1
    assert all(r.levelno == logging.WARNING for r in records)


def test_every_good_image_loads(mixed_folder: tuple[Path, list[Path], list[Path]]) -> None:
    _, good, _ = mixed_folder
    ds = PhotoFolder(good, image_size=24, train=False)
    for i in range(len(ds)):
        assert ds[i].shape == (3, 24, 24)
    assert ds.num_skipped == 0


def test_bad_file_replaced_by_next_file(tmp_path: Path) -> None:
    good = _photo(tmp_path / "b.png", seed=3)
    (bad,) = [p for p in _plant_bad_files(tmp_path) if p.name == "empty.jpg"]
    ds = PhotoFolder([bad, good], image_size=16, train=False)
    torch.testing.assert_close(ds[0], ds[1])


def test_all_files_unreadable_is_a_clear_error(tmp_path: Path) -> None:
    ds = PhotoFolder(_plant_bad_files(tmp_path), image_size=16, train=True)
    with pytest.raises(RuntimeError, match="unreadable"):
        ds[0]
    assert ds.num_skipped == 3


def test_skipped_count_seen_from_worker_processes(
    mixed_folder: tuple[Path, list[Path], list[Path]],
) -> None:
    root, good, bad = mixed_folder
    dm = PhotoDataModule(
        root, val_fraction=0.0, image_size=16, batch_size=2, num_workers=2, pin_memory=False
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    assert sum(len(b) for b in loader) == len(good) + len(bad) == 8  # 4 full batches
    # Counted in the worker processes, visible here through shared memory.
    assert dm.skipped_count() == 3
    assert dm.train_set is not None and dm.train_set.skipped == set(bad)
    # Persistent workers live as long as the loader's iterator: stop them here, not in whichever
    # test happens to run when the garbage collector gets to them.
    loader._iterator._shutdown_workers()  # type: ignore[union-attr]


@pytest.mark.parametrize(("w", "h"), [(100, 40), (40, 100), (10, 7), (64, 64)])
def test_train_crops_are_square(tmp_path: Path, w: int, h: int) -> None:
    path = _photo(tmp_path / "p.jpg", w=w, h=h)
    ds = PhotoFolder([path], image_size=32, train=True)
    for _ in range(5):
        assert ds[0].shape == (3, 32, 32)


def test_train_crops_random_val_deterministic(tmp_path: Path) -> None:
    path = _photo(tmp_path / "wide.png", w=120, h=30)
    train = PhotoFolder([path], image_size=30, train=True)
    torch.manual_seed(0)
    crops = {tuple(train[0][0, 0, :4].tolist()) for _ in range(20)}
    assert len(crops) > 1

    val = PhotoFolder([path], image_size=30, train=False)
    torch.testing.assert_close(val[0], val[0], rtol=0, atol=0)
    # The centre crop is the middle of the (already short-side-sized) photo.
    full = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(val[0], full[:, :, 45:75], rtol=0, atol=0)


# --- split_files ------------------------------------------------------------------------------


def _names(root: Path, n: int) -> list[Path]:
    return [root / f"dir{i % 3}" / f"img_{i:04d}.jpg" for i in range(n)]


def test_split_is_deterministic_disjoint_and_complete(tmp_path: Path) -> None:
    files = _names(tmp_path, 200)
    train, val = split_files(files, val_fraction=0.1, root=tmp_path)
    assert len(val) == 20 and len(train) == 180
    assert set(train).isdisjoint(val)
    assert set(train) | set(val) == set(files)
    assert train == sorted(train)

    shuffled = [files[i] for i in np.random.default_rng(0).permutation(len(files))]
    assert split_files(shuffled, val_fraction=0.1, root=tmp_path) == (train, val)
    # Independent of where the folder lives: only the relative path counts.
    moved = [tmp_path / "elsewhere" / f.relative_to(tmp_path) for f in files]
    _, val_moved = split_files(moved, val_fraction=0.1, root=tmp_path / "elsewhere")
    assert [f.relative_to(tmp_path / "elsewhere") for f in val_moved] == [
        f.relative_to(tmp_path) for f in val
    ]


def test_split_stable_when_a_file_is_added(tmp_path: Path) -> None:
    files = _names(tmp_path, 100)
    _, val = split_files(files, val_fraction=0.1, root=tmp_path)
    for extra in range(20):
        new = tmp_path / "added" / f"new_{extra}.jpg"
        train2, val2 = split_files([*files, new], val_fraction=0.1, root=tmp_path)
        assert len(val2) == 10
        # At most one old validation file is displaced, and only by the new file.
        assert len(set(val) - set(val2)) <= 1
        assert set(val2) - set(val) <= {new}
        assert set(train2) | set(val2) == {*files, new}


def test_split_edge_cases(tmp_path: Path) -> None:
    files = _names(tmp_path, 5)
    assert split_files(files, val_fraction=0.0, root=tmp_path) == (sorted(files), [])
    train, val = split_files(files, val_fraction=0.01, root=tmp_path)
    assert len(val) == 1  # at least one
    train, val = split_files(files, val_fraction=0.99, root=tmp_path)
    assert len(train) == 1  # train keeps one
    with pytest.raises(ValueError, match="single image"):
        split_files(files[:1], val_fraction=0.1, root=tmp_path)
    assert split_files(files[:1], val_fraction=0.0, root=tmp_path) == (files[:1], [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_files(files, val_fraction=1.0, root=tmp_path)
    with pytest.raises(ValueError, match="not under"):
        split_files([Path("/elsewhere/x.jpg")], val_fraction=0.1, root=tmp_path)


# --- PhotoDataModule --------------------------------------------------------------------------


def test_datamodule_finds_nested_and_skips_hidden(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    files = [_photo(root / "train2014" / f"{i}.jpg", seed=i) for i in range(6)]
    _photo(root / ".thumbnails" / "t.jpg")
    _photo(root / "train2014" / "._mac_resource_fork.jpg")
    dm = PhotoDataModule(root, val_fraction=0.2, image_size=16, batch_size=2, num_workers=0)
    dm.setup("fit")
    assert dm.train_set is not None and dm.val_set is not None
    assert set(dm.train_set.files) | set(dm.val_set.files) == set(files)
    assert len(dm.val_set) == 1

    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (2, 3, 16, 16)
    val_batches = list(dm.val_dataloader())
    assert [b.shape for b in val_batches] == [(1, 3, 16, 16)]


def test_datamodule_empty_and_missing_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (empty / "readme.txt").write_text("no photos here")
    with pytest.raises(ValueError, match=r"no images \(.*\.jpg.*\) found under .*empty_dir"):
        PhotoDataModule(empty, num_workers=0).setup("fit")
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        PhotoDataModule(tmp_path / "does_not_exist", num_workers=0).setup("fit")

    root = tmp_path / "train"
    _photo(root / "a.jpg")
    with pytest.raises(ValueError, match="empty_dir"):
        PhotoDataModule(root, val_root=empty, num_workers=0).setup("fit")
    with pytest.raises(FileNotFoundError, match="no_val"):
        PhotoDataModule(root, val_root=tmp_path / "no_val", num_workers=0).setup("fit")


def test_val_root_overrides_split(tmp_path: Path) -> None:
    train_files = [_photo(tmp_path / "train" / f"{i}.jpg", seed=i) for i in range(5)]
    val_files = [_photo(tmp_path / "val" / f"{i}.png", seed=10 + i) for i in range(3)]
    dm = PhotoDataModule(tmp_path / "train", val_root=tmp_path / "val", val_fraction=0.5)
    dm.setup("fit")
    assert dm.train_set is not None and dm.val_set is not None
    assert dm.train_set.files == train_files  # all of root is train
    assert dm.val_set.files == val_files


def test_val_root_inside_root_is_not_trained_on(tmp_path: Path) -> None:
    train_files = [_photo(tmp_path / f"{i}.jpg", seed=i) for i in range(3)]
    _photo(tmp_path / "val" / "v.jpg")
    dm = PhotoDataModule(tmp_path, val_root=tmp_path / "val", num_workers=0)
    dm.setup("fit")
    assert dm.train_set is not None and dm.train_set.files == train_files


def test_max_val_images_caps_and_held_out_files_stay_out(tmp_path: Path) -> None:
    files = [_photo(tmp_path / f"{i:02d}.png", w=8, h=8, seed=i) for i in range(40)]
    dm = PhotoDataModule(tmp_path, val_fraction=0.25, max_val_images=3, num_workers=0)
    dm.setup("fit")
    assert dm.train_set is not None and dm.val_set is not None
    _, held_out = split_files(files, val_fraction=0.25, root=tmp_path)
    assert dm.val_set.files == held_out[:3]
    assert len(dm.train_set) == 30  # the other 7 held-out files are not trained on either
    dm.setup("validate")  # idempotent
    assert dm.val_set.files == held_out[:3]


def test_tiny_folder_still_yields_batches(tmp_path: Path) -> None:
    for i in range(3):
        _photo(tmp_path / f"{i}.jpg", seed=i)
    dm = PhotoDataModule(tmp_path, val_fraction=0.0, batch_size=4, image_size=8, num_workers=0)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert not loader.drop_last
    assert [b.shape[0] for b in loader] == [3]
    assert dm.val_dataloader() == []  # no validation set

    dm = PhotoDataModule(tmp_path, val_fraction=0.0, batch_size=2, image_size=8, num_workers=0)
    dm.setup("fit")
    assert dm.train_dataloader().drop_last


def test_datamodule_skipped_count(mixed_folder: tuple[Path, list[Path], list[Path]]) -> None:
    root, _, bad = mixed_folder
    dm = PhotoDataModule(root, val_fraction=0.0, batch_size=2, image_size=8, num_workers=0)
    assert dm.skipped_count() == 0  # before setup
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert not loader.persistent_workers
    for _ in loader:
        pass
    assert dm.skipped_count() == 3
    assert dm.train_set is not None and dm.train_set.skipped == set(bad)

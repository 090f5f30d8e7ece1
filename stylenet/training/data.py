"""Photo-folder dataset and LightningDataModule for training transform networks.

Johnson et al. 2016 (Sec. 4.1) train on the 80k COCO train2014 images, each resized to 256 x 256
(aspect ratio not kept), batch 4. We follow the pytorch/examples fast_neural_style reference
instead: resize the short side to ``image_size``, then crop a square (random for training,
centre for validation), so photos are never squashed.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from stylenet.errors import ConfigError
from stylenet.io.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    find_images,
    load_image,
    pil_to_tensor,
)

__all__ = ["PhotoDataModule", "PhotoFolder", "split_files"]

log = logging.getLogger(__name__)


class PhotoFolder(Dataset[Tensor]):
    """Photos under a folder (recursive, any layout — COCO train2014/ works as is).

    Each item is a (3, S, S) float tensor in [0, 1], S = ``image_size``: the photo resized so its
    short side is S (antialiased bicubic; small photos are upscaled), then cropped to S x S.

    Unreadable files never raise mid-epoch: the file is logged (a warning from this module's
    logger), marked as skipped, and the next readable file (by index, wrapping round) is returned
    in its place. Skipped files are recorded in a shared-memory flag per file, so
    ``skipped`` and ``num_skipped`` count the files found bad by any process, DataLoader workers
    included, and a known-bad file is not decoded again. The warning is logged once per file per
    process (two workers hitting the same bad file at the same moment may both log it).

    Args:
        files: Image files, e.g. from ``find_images``.
        image_size: Side S of the square crops.
        train: Random crops if True; deterministic centre crops if False.
        resize: Resize each photo's short side to S before cropping (style transfer: crops of
            the whole scene); False crops at the photo's own resolution (super-resolution: the
            detail of the original pixels), resizing only photos whose short side is under S.
    """

    def __init__(
        self, files: Sequence[Path], *, image_size: int, train: bool, resize: bool = True
    ) -> None:
        if image_size < 1:
            raise ConfigError(f"image_size must be positive, got {image_size}")
        self.files = [Path(f) for f in files]
        self.image_size = image_size
        self.train = train
        self.resize = resize
        # (N,) uint8 in shared memory: workers mark files here and the main process reads it.
        self._bad = torch.zeros(len(self.files), dtype=torch.uint8).share_memory_()
        self._warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        n = len(self.files)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} files")
        for offset in range(n):
            i = (index + offset) % n
            if self._bad[i]:
                continue
            try:
                img = load_image(self.files[i])
            except ImageReadError as e:
                self._mark_bad(i, e)
                continue
            return pil_to_tensor(self._crop(self._resize_short_side(img)))
        raise RuntimeError(
            f"all {n} images in this dataset are unreadable (first: {self.files[0]}); "
            "see the warnings from logger 'stylenet.training.data'"
        )

    def _mark_bad(self, i: int, error: ImageReadError) -> None:
        if i not in self._warned and not self._bad[i]:
            log.warning("skipping unreadable image %s: %s", error.path, error.reason)
        self._warned.add(i)
        self._bad[i] = 1

    def _resize_short_side(self, img: Image.Image) -> Image.Image:
        s = self.image_size
        w, h = img.size
        if not self.resize and min(w, h) >= s:
            return img
        scale = s / min(w, h)
        # max(s, ...) so rounding can never leave the short side at s - 1.
        new = (max(s, round(w * scale)), max(s, round(h * scale)))
        if new == img.size:
            return img
        # Resizing the 8-bit PIL image before tensor conversion is cheaper than resizing a float
        # tensor, and Pillow's resampling is antialiased when downscaling.
        return img.resize(new, Image.Resampling.BICUBIC)

    def _crop(self, img: Image.Image) -> Image.Image:
        s = self.image_size
        w, h = img.size
        if self.train:
            # torch's RNG: DataLoader seeds it per worker, and seed_everything(workers=True)
            # makes the crops reproducible.
            left = int(torch.randint(0, w - s + 1, ()).item())
            top = int(torch.randint(0, h - s + 1, ()).item())
        else:
            left, top = (w - s) // 2, (h - s) // 2
        return img.crop((left, top, left + s, top + s))

    def decode_one(self) -> None:
        """Decode files in order until one succeeds; those that failed before it are marked
        skipped (and logged), as in training.

        Raises:
            ImageReadError: None of them decodes (the first file's error; nothing is logged, the
                error says it all).
        """
        failed: list[tuple[int, ImageReadError]] = []
        for i in range(len(self.files)):
            try:
                load_image(self.files[i])
            except ImageReadError as e:
                failed.append((i, e))
                continue
            for j, error in failed:
                self._mark_bad(j, error)
            return
        if not failed:
            raise ImageReadError(self.files[0] if self.files else Path(), "no files")
        raise failed[0][1]

    @property
    def skipped(self) -> set[Path]:
        """Files found unreadable so far, by any process using this dataset."""
        return {self.files[i] for i in torch.nonzero(self._bad).flatten().tolist()}

    @property
    def num_skipped(self) -> int:
        """Number of files found unreadable so far, by any process using this dataset."""
        return int(self._bad.sum().item())


def _rank_key(path: Path, root: Path) -> tuple[str, str]:
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        raise ValueError(f"{path} is not under {root}") from None
    return hashlib.sha1(rel.encode("utf-8")).hexdigest(), rel


def split_files(
    files: list[Path], *, val_fraction: float, root: Path
) -> tuple[list[Path], list[Path]]:
    """Splits files into train and held-out validation sets, deterministically.

    Files are ranked by the SHA-1 of their path relative to ``root`` (posix form), and the first
    ``max(1, round(val_fraction * N))`` form the validation set. A file's side therefore depends
    only on its own name: the split ignores file order and machine, and adding files moves an
    existing validation file to train only when a new file outranks it.

    Args:
        files: Files under ``root``.
        val_fraction: Fraction in [0, 1) to hold out; 0 gives no validation set.
        root: Folder the files are named relative to.

    Returns:
        ``(train, val)``: train sorted by path, val in ranking order (so its first k files are a
        stable sample of k).

    Raises:
        ValueError: ``val_fraction`` outside [0, 1), a file not under ``root``, or a single
            file when a validation set is wanted (train must keep at least one).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root)
    # Duplicates would otherwise be able to land on both sides.
    ranked = sorted({Path(f) for f in files}, key=lambda f: _rank_key(f, root))
    n = len(ranked)
    if val_fraction == 0.0 or n == 0:
        return sorted(ranked), []
    if n == 1:
        raise ConfigError(
            f"cannot hold out a validation split from a single image under {root}; "
            "use val_fraction=0 or give a separate validation folder"
        )
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    return sorted(ranked[n_val:]), ranked[:n_val]


class PhotoDataModule(pl.LightningDataModule):
    """Training photos from a folder, with a held-out or separate validation set.

    Args:
        root: Folder of training photos, searched recursively (hidden files skipped).
        val_root: Folder of validation photos. If given, all of ``root`` is used for training
            (except files that are also under ``val_root``); otherwise validation files are held
            out of ``root`` with ``split_files``.
        val_fraction: Fraction of ``root`` held out when ``val_root`` is None. Held-out files
            are never trained on, even those beyond ``max_val_images``, so the training set does
            not change with the validation cap.
        max_val_images: Validate on at most this many (the first after the SHA-1 ranking for a
            held-out split, the first by path for ``val_root``); None for all.
        image_size: Side of the square training crops (Johnson et al.: 256).
        val_image_size: Side of the validation centre crops; defaults to ``image_size``.
        batch_size: Batch size for training and validation (Johnson et al.: 4).
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory (only takes effect when CUDA is available).
        persistent_workers: Keep workers alive between epochs; None means ``num_workers > 0``.
        prefetch_factor: Batches each worker loads ahead (torch's default: 2).
        resize: Resize photos' short side to the crop size before cropping (see `PhotoFolder`).
        wrap: Called with each `PhotoFolder` (train and held-out) to make the dataset the
            loaders read: a task's data transform (``SuperResolutionPairs``: (low-res, high-res)
            pairs). None: the crops themselves.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        val_root: str | Path | None = None,
        val_fraction: float = 0.05,
        max_val_images: int | None = 16,
        image_size: int = 256,  # Johnson et al. 2016, Sec. 4.1
        val_image_size: int | None = None,
        batch_size: int = 4,  # Johnson et al. 2016, Sec. 4.1
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool | None = None,
        prefetch_factor: int = 2,
        resize: bool = True,
        wrap: Callable[[PhotoFolder], Dataset[Any]] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        if prefetch_factor < 1:
            raise ConfigError(f"prefetch_factor must be positive, got {prefetch_factor}")
        if max_val_images is not None and max_val_images < 0:
            raise ConfigError(f"max_val_images must be >= 0 or None, got {max_val_images}")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        # (wrap is a function: not data a checkpoint may hold, see checkpoints.py)
        self.save_hyperparameters(ignore=["wrap"], logger=False)
        self.root = Path(root)
        self.val_root = Path(val_root) if val_root is not None else None
        self.val_fraction = val_fraction
        self.max_val_images = max_val_images
        self.image_size = image_size
        self.val_image_size = val_image_size if val_image_size is not None else image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = (
            num_workers > 0
            if persistent_workers is None
            else persistent_workers and num_workers > 0
        )
        self.prefetch_factor = prefetch_factor
        self.resize = resize
        self.wrap = wrap
        self.train_set: PhotoFolder | None = None
        self.val_set: PhotoFolder | None = None

    def setup(self, stage: str | None = None) -> None:
        """Lists the files and builds the datasets (once; later calls are no-ops).

        Only the folder listing is read here: files are opened when they are loaded, so a bad
        file costs a warning during training, not a failed start.

        Raises:
            FileNotFoundError: ``root`` or ``val_root`` does not exist.
            ValueError: No images found in one of them, or too few to split.
        """
        if self.train_set is not None:
            return
        train_files = _list_images(self.root)
        if self.val_root is not None:
            val_files = _list_images(self.val_root)
            # A val_root nested inside root must not leak into training.
            val_real = {f.resolve() for f in val_files}
            train_files = [f for f in train_files if f.resolve() not in val_real]
            if not train_files:
                raise ConfigError(
                    f"every image under {self.root} is also under the validation folder "
                    f"{self.val_root}; nothing left to train on"
                )
        else:
            train_files, val_files = split_files(
                train_files, val_fraction=self.val_fraction, root=self.root
            )
        if self.max_val_images is not None:
            val_files = val_files[: self.max_val_images]
        self.train_set = PhotoFolder(
            train_files, image_size=self.image_size, train=True, resize=self.resize
        )
        self.val_set = PhotoFolder(
            val_files, image_size=self.val_image_size, train=False, resize=self.resize
        )
        log.info(
            "%d training images under %s, %d validation images",
            len(train_files),
            self.root,
            len(val_files),
        )

    def check_readable(self) -> None:
        """Fail now, not at the first step, when no training photo or no held-out photo decodes
        (a folder of files that are not photos, say). Call after `setup`.

        Raises:
            ConfigError: Naming the setting, the folder and the first file's reason.
        """
        assert self.train_set is not None and self.val_set is not None, "call setup() first"
        val_key = "data.val_root" if self.val_root else "data.root"
        for key, dataset, kind in (
            ("data.root", self.train_set, "training"),
            (val_key, self.val_set, "held-out"),
        ):
            if not len(dataset):
                continue
            try:
                dataset.decode_one()
            except ImageReadError as e:
                folder = self.val_root if key == "data.val_root" else self.root
                held_out = key == "data.root" and kind == "held-out"
                hint = (
                    "; data.val_fraction holds them out: give data.val_root=DIR" if held_out else ""
                )
                raise ConfigError(
                    f"{key}={folder}: none of its {len(dataset)} {kind} photos can be read "
                    f"(first: {e.path.name}: {e.reason}){hint}"
                ) from None

    def train_dataloader(self) -> DataLoader[Tensor]:
        assert self.train_set is not None, "call setup() first"
        # Under DDP Lightning swaps in a DistributedSampler, and each rank sees about N / world.
        world = self.trainer.world_size if self.trainer is not None else 1
        per_rank = math.ceil(len(self.train_set) / world)
        # A folder smaller than one batch would yield no batches at all with drop_last; keep the
        # short batch instead so tiny folders (smoke tests, demos) still train.
        drop_last = per_rank >= self.batch_size
        return self._loader(self.train_set, shuffle=True, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader[Tensor] | list:
        assert self.val_set is not None, "call setup() first"
        if len(self.val_set) == 0:
            # Lightning treats an empty list as "no validation".
            return []
        return self._loader(self.val_set, shuffle=False, drop_last=False)

    def skipped_count(self) -> int:
        """Unreadable files skipped so far, over the train and val sets and all workers."""
        return sum(d.num_skipped for d in (self.train_set, self.val_set) if d is not None)

    def _loader(self, dataset: PhotoFolder, *, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            self.wrap(dataset) if self.wrap is not None else dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
        )


def _list_images(root: Path) -> list[Path]:
    files = find_images(root)
    if not files:
        raise ConfigError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {root}")
    return files

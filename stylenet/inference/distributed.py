"""Stylize (or upscale) a folder of any number of photos across devices and nodes with
Lightning: `Trainer.predict` over the photos, each process taking its own share (Lightning's
unrepeated distributed sampler: no photo twice), a `BasePredictionWriter` writing each result
atomically as soon as it is made.

    summary = stylize_distributed(
        "model.pt", plan(inputs, output, overwrite=True).jobs, Options(), devices=4, num_nodes=2
    )

Resumable: an output that exists when its photo's turn comes is left alone and counted as skipped
(without ``overwrite``), so a killed job started again carries on where it stopped; each output is
written by the one process its photo belongs to, through a temporary file moved into place, so
every photo is written exactly once and never half. A photo that fails is counted with its reason;
the others go on. Rank 0 gathers every process's record into the `Summary`.

The processes are started the way Lightning starts them: by the launcher for several devices on
one machine (the command is run again per device), by ``srun`` under SLURM (one task per device),
or by ``torchrun``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from stylenet.inference.api import Stylizer, load
from stylenet.inference.batch import (
    INPUT_ERRORS,
    Job,
    Options,
    check_room,
    load_resized,
    target_size,
)
from stylenet.io.files import remove_temporaries
from stylenet.io.images import pil_to_tensor, save_image, tensor_to_pil

log = logging.getLogger(__name__)

# Where each process writes the record of its photos, inside the output folder; removed once
# rank 0 has read them.
RECORDS = ".stylenet-records"


@dataclass
class DistributedSummary:
    """What a distributed run did, over all processes."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    processes: int = 1


class _Photos(Dataset[dict[str, Any]]):
    """The jobs' photos, decoded and resized in the loader; a photo that cannot be read is handed
    on as its error, and one whose output exists already as a skip (both decided here, by the
    one process the photo belongs to)."""

    def __init__(self, jobs: Sequence[Job], options: Options) -> None:
        self.jobs, self.options = list(jobs), options

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        job = self.jobs[index]
        item: dict[str, Any] = {"index": index, "image": None, "error": None, "skip": False}
        if job.dst.exists() and not self.options.overwrite:
            item["skip"] = True
            return item
        try:
            job.size = target_size(job.src, self.options.max_side, self.options.scale)
            check_room(job.size)
            item["image"] = pil_to_tensor(load_resized(job))
        except INPUT_ERRORS as err:
            item["error"] = str(err) or type(err).__name__
        return item


class _Stylize(pl.LightningModule):
    """Loads the model on its process's device when prediction starts and stylizes each photo
    of a batch as `stylenet-stylize` would (tiled where it must be)."""

    def __init__(self, model: Path, load_options: dict[str, Any], options: Options) -> None:
        super().__init__()
        self.model_path, self.load_options, self.options = model, load_options, options
        self.stylizer: Stylizer | None = None

    def on_predict_start(self) -> None:
        self.stylizer = load(self.model_path, device=self.device, **self.load_options)

    def predict_step(self, batch: list[dict[str, Any]], batch_idx: int) -> list[dict[str, Any]]:
        stylizer = self.stylizer
        assert stylizer is not None
        out = []
        for item in batch:
            if item["image"] is not None:
                try:
                    image = tensor_to_pil(item["image"])
                    tile = stylizer.choose_tile(image.height, image.width, self.options.tile)
                    item["output"] = stylizer(
                        image,
                        preserve_color=self.options.preserve_color,
                        strength=self.options.strength,
                        match_histograms=self.options.match_histograms,
                        tile=tile,
                        overlap=self.options.overlap,
                        stats_size=self.options.stats_size,
                    )
                except INPUT_ERRORS as err:
                    item["error"] = str(err) or type(err).__name__
                item["image"] = None
            out.append(item)
        return out


class _Writer(BasePredictionWriter):
    """Writes each result as its batch ends and keeps this process's record: one JSON line per
    photo, appended to ``OUTPUT/.stylenet-records/rank<N>.jsonl``."""

    def __init__(self, jobs: Sequence[Job], records: Path, overwrite: bool) -> None:
        super().__init__(write_interval="batch")
        self.jobs, self.records, self.overwrite = list(jobs), records, overwrite

    def record_path(self, rank: int) -> Path:
        return self.records / f"rank{rank}.jsonl"

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == 0:  # what a killed run left half-written; before any writes
            for folder in sorted({job.dst.parent for job in self.jobs}):
                if folder.is_dir():
                    remove_temporaries(folder)
        self.records.mkdir(parents=True, exist_ok=True)
        self.record_path(trainer.global_rank).write_text("")  # a previous run's record: gone
        trainer.strategy.barrier("stylenet-start")

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        lines = []
        for item in prediction:
            job = self.jobs[item["index"]]
            status, reason = "done", ""
            if item["skip"]:
                status = "skipped"
            elif item["error"] is not None:
                status, reason = "failed", item["error"]
            else:
                try:
                    save_image(item["output"], job.dst, overwrite=self.overwrite)
                except FileExistsError:  # written meanwhile by another run: not ours to replace
                    status = "skipped"
                except INPUT_ERRORS as err:
                    status, reason = "failed", f"cannot write {job.dst}: {err}"
            if status == "failed":
                log.warning("%s failed (the run goes on): %s", job.src, reason)
            lines.append(json.dumps({"src": str(job.src), "status": status, "reason": reason}))
        with self.record_path(trainer.global_rank).open("a") as fh:
            fh.write("".join(line + "\n" for line in lines))


def stylize_distributed(
    model: str | os.PathLike[str],
    jobs: Sequence[Job],
    options: Options,
    *,
    output: Path,
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: int = 1,
    load_options: dict[str, Any] | None = None,
) -> DistributedSummary | None:
    """Stylize `jobs` (photos: `plan`'s, made with ``overwrite=True`` so that existing outputs
    are skipped here rather than refused there) on every process Lightning starts.

    Returns:
        The summary on rank 0 (None on the other ranks).
    """
    records = output / RECORDS
    writer = _Writer(jobs, records, options.overwrite)
    multi = num_nodes > 1 or (devices not in ("auto", 1, "1"))
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if multi else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=options.progress,
        callbacks=[writer],
        use_distributed_sampler=True,
    )
    loader = DataLoader(
        _Photos(jobs, options),
        batch_size=1,  # photos of any size; one forward pass each
        shuffle=False,
        num_workers=0,
        collate_fn=list,
    )
    module = _Stylize(Path(model), dict(load_options or {}), options)
    trainer.predict(module, loader, return_predictions=False)
    trainer.strategy.barrier("stylenet-records")
    if trainer.global_rank != 0:
        return None
    summary = DistributedSummary(processes=trainer.world_size)
    for path in sorted(records.glob("rank*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill (of a run before this)
                continue
            if record["status"] == "done":
                summary.done += 1
            elif record["status"] == "skipped":
                summary.skipped += 1
            else:
                summary.failed.append((Path(record["src"]), record["reason"]))
        path.unlink()
    with contextlib.suppress(OSError):  # not empty: something of the user's is in it
        records.rmdir()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary

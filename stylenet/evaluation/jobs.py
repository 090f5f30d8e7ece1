"""The record a training job keeps of itself (``job.json`` in its run folder): how it ended
(running, finished, diverged, failed or stopped, with a one-line reason), the overrides it was
started with, its steps, wall time and final metrics. ``stylenet-train`` writes it;
``stylenet-sweep-report`` reads it, so a sweep's report can name a job that failed before it
trained a step. Light on purpose (no torch): the training command writes the first record
before it imports anything heavy."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from stylenet.io.files import atomic_write

JOB_RECORD = "job.json"
STATUSES = ("running", "finished", "diverged", "failed", "stopped")


@dataclass
class JobRecord:
    """What one job did.

    Attributes:
        status: One of `STATUSES` ("running" also for a job killed without a word: kill -9, a
            lost node).
        overrides: The job's Hydra overrides (``key=value``), as it was started.
        reason: Why it did not finish, one line.
        started: Start time (seconds since the epoch).
        seconds: Wall time until it ended (None while running).
        steps: Optimizer steps taken (finished jobs).
        metrics: Its final logged metrics (``val/raw/style``, ...), finite floats only.
    """

    status: str
    overrides: list[str] = field(default_factory=list)
    reason: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float | None = None
    steps: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def ended(self, status: str, *, reason: str | None = None, **fields: Any) -> JobRecord:
        """This record with its end: `status`, `reason` and the wall time since it started."""
        if status not in STATUSES:
            raise ValueError(f"unknown job status {status!r}")
        return replace(
            self, status=status, reason=reason, seconds=time.time() - self.started, **fields
        )


def one_line(text: str, limit: int = 300) -> str:
    """`text` as one line of at most `limit` characters (a record's or a report's reason)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of `metrics` (a run's ``run_dir`` and paths left out)."""
    out = {}
    for key, value in metrics.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def write_job_record(folder: str | os.PathLike[str], record: JobRecord) -> Path:
    """Write `record` to ``folder/job.json`` (atomically: a reader never sees half of it)."""
    path = Path(folder) / JOB_RECORD
    text = json.dumps(asdict(record), indent=1, sort_keys=True)
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")), overwrite=True)
    return path


def read_job_record(folder: str | os.PathLike[str]) -> JobRecord | None:
    """``folder/job.json``, or None if there is none.

    Raises:
        ValueError: The file is not a job record (its reason names the file).
    """
    path = Path(folder) / JOB_RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable job record ({err})") from None
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise ValueError(f"{path}: not a job record (no known status)")
    known = set(JobRecord.__dataclass_fields__)
    try:
        record = JobRecord(**{k: v for k, v in data.items() if k in known})
    except TypeError as err:
        raise ValueError(f"{path}: not a job record ({err})") from None
    if not isinstance(record.overrides, Sequence) or isinstance(record.overrides, str):
        raise ValueError(f"{path}: its overrides are not a list")
    record.overrides = [str(o) for o in record.overrides]
    return record

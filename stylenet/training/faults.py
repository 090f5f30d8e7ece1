"""A bad run stops loudly and a good run is never lost: the divergence guard and the signal
handler (Lightning callbacks), and the errors with which they end a run.

- `DivergenceGuard`: a non-finite loss, or one that stays far above its recent median, stops
  training before the bad step is applied (`TrainingDiverged`, exit 1). The weights of the last
  good step are kept in memory and become ``model.pt``; checkpoints saved after it are set aside.
- `StopOnSignal`: SIGTERM (a scheduler's stop or preemption) and SIGINT (Ctrl-C) let the current
  step finish, then ``last.ckpt`` and ``model.pt`` are written at that step and the run ends with
  `TrainingInterrupted` (exit 128 + signal number, as a shell reports a killed command). A second
  Ctrl-C stops at once.
"""

from __future__ import annotations

import logging
import math
import signal
import statistics
from collections import deque
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import Tensor

from stylenet.errors import ConfigError, StylenetError
from stylenet.training.checkpoints import set_aside_after

log = logging.getLogger(__name__)


class TrainingDiverged(StylenetError):
    """The loss became non-finite or exploded; the run stopped without applying that step.

    Attributes:
        step: The training step whose loss was bad.
        good_step: The global step of `good_state` (the last weights whose loss was good), or
            None if no step was good.
        good_state: A CPU copy of the network's state dict at `good_step`.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        step: int,
        good_step: int | None,
        good_state: dict[str, Tensor] | None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.good_step = good_step
        self.good_state = good_state


class TrainingInterrupted(StylenetError):
    """A signal stopped the run after its checkpoint and model were written."""

    def __init__(self, signum: int, step: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at step {step}; last.ckpt and model.pt hold it")
        self.signum = signum
        self.step = step
        self.exit_code = 128 + signum


def _format_terms(terms: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in terms.items())


class DivergenceGuard(Callback):
    """Stop training when the loss is non-finite, or above ``factor`` × the median of the last
    ``window`` good steps for ``patience`` steps in a row.

    Runs before the backward pass, so a bad step is never applied. Each good step's weights (the
    ones that produced its loss) are copied aside, on the network's device; on divergence they
    travel with `TrainingDiverged` for `ExportModel` to write as ``model.pt``, and checkpoints
    saved after them are renamed ``*.diverged``.

    Args:
        factor: How far above the running median counts as exploding (> 1; None: only
            non-finite losses stop the run).
        patience: Steps in a row above it before the run stops.
        window: Good steps the median is taken over; the check starts once there are
            ``min(window, 20)`` of them.
    """

    def __init__(self, factor: float | None = 5.0, patience: int = 50, window: int = 200) -> None:
        if factor is not None and not factor > 1:
            raise ConfigError(f"train.divergence.factor must be > 1 or null, got {factor}")
        if patience < 1 or window < 1:
            raise ConfigError(
                f"train.divergence.patience and window must be >= 1, got {patience}, {window}"
            )
        self.factor = factor
        self.patience = patience
        self.history: deque[float] = deque(maxlen=window)
        self.min_history = min(window, 20)
        self.streak = 0
        self.good_state: dict[str, Tensor] | None = None
        self.good_step: int | None = None

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor
    ) -> None:
        step = trainer.global_step  # the weights that produced `loss` are those after `step`
        total = float(loss.detach())
        terms = {k: float(v) for k, v in getattr(pl_module, "last_terms", {}).items()}
        if not math.isfinite(total):
            self._stop(
                trainer, step, f"the loss is {total} at step {step + 1} ({_format_terms(terms)})"
            )
        if self.factor is not None and len(self.history) >= self.min_history:
            median = statistics.median(self.history)
            if total > self.factor * median:
                self.streak += 1
                if self.streak >= self.patience:
                    self._stop(
                        trainer,
                        step,
                        f"the loss exploded: above {self.factor:g}× its running median "
                        f"({median:.4g}) for {self.streak} steps, now {total:.4g} at step "
                        f"{step + 1} ({_format_terms(terms)})",
                    )
                return  # an outlier: neither good nor (yet) fatal
        self.streak = 0
        self.history.append(total)
        self._keep(pl_module, step)

    def _keep(self, pl_module: pl.LightningModule, step: int) -> None:
        net = getattr(pl_module, "net", pl_module)
        assert isinstance(net, torch.nn.Module)
        with torch.no_grad():
            if self.good_state is None:
                self.good_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                for k, v in net.state_dict().items():
                    self.good_state[k].copy_(v)
        self.good_step = step

    def _stop(self, trainer: pl.Trainer, step: int, what: str) -> None:
        # During an explosion streak no copy is taken: good_step is the last step before it.
        good_step = self.good_step
        message = f"training diverged: {what}. "
        callback = trainer.checkpoint_callback
        if trainer.is_global_zero and isinstance(callback, ModelCheckpoint) and callback.dirpath:
            moved = set_aside_after(
                Path(callback.dirpath), good_step if good_step is not None else -1
            )
            if moved:
                message += f"Set aside {len(moved)} later checkpoint(s) as *.diverged. "
        if not good_step:  # None, or 0: the first update already broke the network
            message += "No step was good, so no model was written. "
        else:
            message += f"model.pt holds the weights of step {good_step}. "
        message += "Lower optimizer.lr or the loss weights, or check the photos."
        state = {k: v.cpu() for k, v in self.good_state.items()} if self.good_state else None
        raise TrainingDiverged(message, step=step + 1, good_step=good_step, good_state=state)


class StopOnSignal(Callback):
    """On SIGTERM or SIGINT, finish the current step, write ``last.ckpt`` and end the run with
    `TrainingInterrupted` (`ExportModel` writes ``model.pt`` at the same step).

    The handlers are installed by `install` before ``trainer.fit`` (Lightning then chains its
    own SIGTERM handler with them) and removed by `uninstall`. Under DDP the ranks agree on
    stopping at the same step.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if self.signum is None:
            log.warning(
                "%s received: finishing this step, then saving and stopping",
                signal.Signals(signum).name,
            )
        self.signum = signum

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False)
        if stop:
            self._save(trainer)
            raise TrainingInterrupted(self.signum or signal.SIGTERM, trainer.global_step)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # Lightning's own SIGTERM handler stops the loop between two steps with
        # SIGTERMException when the signal lands after this callback's check; save there too
        # (`stylenet.training.run.train` turns it into TrainingInterrupted).
        if isinstance(exception, SIGTERMException):
            self._save(trainer)

    @staticmethod
    def _save(trainer: pl.Trainer) -> None:
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint) and callback.dirpath and trainer.global_step:
            # A write, not a load: the full checkpoint (optimizer and loop state) that resume needs;
            # every read goes through stylenet.training.checkpoints (weights_only=True).
            trainer.save_checkpoint(Path(callback.dirpath) / "last.ckpt", weights_only=False)

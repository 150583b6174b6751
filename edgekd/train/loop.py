"""The training loop shared by every scheme: optimiser, cosine schedule, progress, a checkpoint after every
epoch and exact resume.

A checkpoint holds the trainable modules, optimiser, scheduler, torch RNG state and the history, written
atomically. Batch order is a function of (seed, epoch), so a run resumed after a crash ends with the same
weights as one that never stopped.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from edgekd.config import TrainConfig
from edgekd.errors import CheckpointError
from edgekd.models.checkpoint import atomic_torch_save
from edgekd.train.batches import Batches

LossFn = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
console = Console(stderr=True)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    from edgekd.errors import ConfigError

    raise ConfigError(f"optimizer '{cfg.optimizer}': choose sgd or adamw")


def make_schedule(optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))


class Trainer:
    """Minimises the sum of the named terms `loss_fn(batch)` returns over `modules`' parameters."""

    def __init__(
        self,
        modules: dict[str, nn.Module],
        loss_fn: LossFn,
        batches: Batches,
        cfg: TrainConfig,
        evaluate: Callable[[], dict] | None = None,
        run_dir: Path | None = None,
        on_progress: Callable[[float], None] | None = None,
        label: str = "train",
        show_progress: bool = True,
    ):
        self.modules = nn.ModuleDict(modules)
        self.loss_fn, self.batches, self.cfg = loss_fn, batches, cfg
        self.evaluate, self.on_progress, self.label = evaluate, on_progress, label
        self.checkpoint_path = Path(run_dir) / "checkpoint.pt" if run_dir else None
        self.show_progress = show_progress
        params = [p for p in self.modules.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, cfg)
        self.scheduler = make_schedule(self.optimizer, cfg, cfg.epochs * len(batches))
        self.history: list[dict] = []
        self.start_epoch = 0

    def _save(self, epoch: int) -> None:
        if self.checkpoint_path is None:
            return
        atomic_torch_save(
            {
                "modules": self.modules.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "epoch": epoch,
                "history": self.history,
                "torch_rng": torch.get_rng_state(),
                "cfg": self.cfg.to_dict(),
            },
            self.checkpoint_path,
        )

    def resume(self) -> bool:
        """Load the last checkpoint if there is one; True when training continues from it."""
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return False
        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CheckpointError(f"{self.checkpoint_path}: cannot resume, checkpoint unreadable ({exc})") from exc
        if state["cfg"] != self.cfg.to_dict():
            changed = sorted(k for k, v in self.cfg.to_dict().items() if state["cfg"].get(k) != v)
            raise CheckpointError(
                f"{self.checkpoint_path}: cannot resume, settings changed since it was written "
                f"({', '.join(changed)}); use a new output folder"
            )
        self.modules.load_state_dict(state["modules"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.history, self.start_epoch = state["history"], state["epoch"]
        return True

    def fit(self) -> list[dict]:
        steps = len(self.batches)
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=console, disable=not self.show_progress, transient=False) as progress:
            task = progress.add_task(
                self.label, total=self.cfg.epochs * steps, completed=self.start_epoch * steps, status=""
            )
            for epoch in range(self.start_epoch, self.cfg.epochs):
                self.history.append(self._train_epoch(epoch, steps, progress, task))
                self._save(epoch + 1)
                if not self.show_progress:
                    summary = ", ".join(f"{k}={v:.4f}" for k, v in self.history[-1].items() if k != "epoch")
                    console.log(f"{self.label} epoch {epoch + 1}/{self.cfg.epochs}: {summary}")
        return self.history

    def _train_epoch(self, epoch: int, steps: int, progress: Progress, task) -> dict:
        self.modules.train()
        sums, count, started = defaultdict(float), 0, time.perf_counter()
        for step, batch in enumerate(self.batches.epoch(epoch)):
            if self.on_progress:
                self.on_progress((epoch + step / steps) / self.cfg.epochs)
            terms = self.loss_fn(batch)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{self.label}: loss became {loss.item()} at epoch {epoch + 1}, step {step} "
                    f"(terms { ({k: float(v) for k, v in terms.items()}) }); lower the lr"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            n = len(batch["y"])
            count += n
            for name, value in terms.items():
                sums[name] += float(value.detach()) * n
            sums["loss"] += float(loss.detach()) * n
            progress.update(task, advance=1, status=f"epoch {epoch + 1} loss {sums['loss'] / count:.4f}")
        record = {
            "epoch": epoch + 1,
            **{k: v / count for k, v in sums.items()},
            "seconds": time.perf_counter() - started,
            "lr": self.scheduler.get_last_lr()[0],
        }
        if self.evaluate:
            record.update({f"val_{k}": v for k, v in self.evaluate().items() if isinstance(v, float)})
        return record

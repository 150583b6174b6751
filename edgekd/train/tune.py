"""Bayesian optimisation of the distillation temperature and alpha (and optionally the method), as the thesis
did, with optuna's TPE sampler. The study lives in SQLite, so an interrupted search resumes where it stopped.

The objective is validation top-1 of a short training run; the test set is never used for selection.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna

from edgekd.config import DistillConfig, TrainConfig, TuneConfig
from edgekd.data.classification import DatasetSplits
from edgekd.distill import build_method
from edgekd.distill.schemes import fit_student
from edgekd.train.metrics import evaluate


def suggest(trial: optuna.Trial, base: DistillConfig, tune: TuneConfig) -> DistillConfig:
    method = trial.suggest_categorical("method", list(tune.methods)) if len(tune.methods) > 1 else tune.methods[0]
    return replace(
        base,
        method=method,
        alpha=trial.suggest_float("alpha", *tune.alpha_range),
        temperature=trial.suggest_float("temperature", *tune.temperature_range, log=True),
    )


def tune_distillation(
    make_student,
    teacher,
    splits: DatasetSplits,
    cfg: TrainConfig,
    base: DistillConfig,
    tune: TuneConfig,
    storage: Path,
    study_name: str,
    train_set=None,
    cache_dir=None,
    show_progress: bool = True,
) -> optuna.Study:
    """Run (or resume) the study until it holds `tune.trials` finished trials; returns it."""
    storage.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=f"sqlite:///{storage}",
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
    )
    trial_cfg = replace(cfg, epochs=tune.epochs)

    def objective(trial: optuna.Trial) -> float:
        dcfg = suggest(trial, base, tune)
        student = make_student()
        method = build_method(dcfg.method, dcfg, student, teacher)
        run = fit_student(
            student,
            method,
            splits,
            trial_cfg,
            teacher=teacher,
            train_set=train_set,
            cache_dir=cache_dir,
            label=f"trial {trial.number}",
            show_progress=show_progress,
        )
        return evaluate(run.model, splits.val, splits.mean, splits.std)["top1"]

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    remaining = tune.trials - len(finished)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining)
    return study


def trials_table(study: optuna.Study) -> list[dict]:
    return [{"trial": t.number, "state": t.state.name, "value": t.value, **t.params} for t in study.trials]

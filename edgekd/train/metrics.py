"""Classification metrics: top-1, per-class precision/recall and the confusion matrix (scikit-learn)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from edgekd.data.classification import ImageDataset
from edgekd.train.batches import iterate_eval


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: ImageDataset, mean, std, batch_size: int = 1024) -> np.ndarray:
    """Logits (N, classes) of an eval-mode model over the dataset."""
    was_training = model.training
    model.eval()
    logits = [model(x) for x, _ in iterate_eval(dataset, mean, std, batch_size)]
    model.train(was_training)
    return torch.cat(logits).numpy()


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def classification_report(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    preds = logits.argmax(1)
    ids = list(range(len(classes)))
    precision, recall, _, support = precision_recall_fscore_support(labels, preds, labels=ids, zero_division=0)
    return {
        "top1": top1(logits, labels),
        "n": int(len(labels)),
        "per_class": {
            c: {"precision": float(p), "recall": float(r), "support": int(s)}
            for c, p, r, s in zip(classes, precision, recall, support, strict=True)
        },
        "confusion_matrix": confusion_matrix(labels, preds, labels=ids).tolist(),
    }


def evaluate(model, dataset: ImageDataset, mean, std, full: bool = False) -> dict:
    logits = predict(model, dataset, mean, std)
    return (
        classification_report(logits, dataset.labels, dataset.classes)
        if full
        else {"top1": top1(logits, dataset.labels), "n": len(dataset)}
    )

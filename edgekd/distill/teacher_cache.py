"""Offline teachers run once per dataset: their logits (and the features a method reads) are computed a
single time and looked up by sample index, so epochs after the first never run the teacher.

Only valid when the student's inputs are the same every epoch (no augmentation); schemes fall back to
running the teacher live otherwise. With a cache folder, the outputs are stored on disk keyed by a hash of
the teacher's weights, the images and the feature names, and reused across runs and processes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from edgekd.data.classification import ImageDataset
from edgekd.models.checkpoint import atomic_torch_save
from edgekd.train.batches import iterate_eval

LOGITS = "teacher_logits"


def feature_key(name: str) -> str:
    return f"teacher:{name}"


def _fingerprint(teacher: nn.Module, dataset: ImageDataset, features: tuple[str, ...], mean, std) -> str:
    digest = hashlib.sha256()
    for name, tensor in teacher.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    digest.update(dataset.images.tobytes())
    digest.update(repr((features, list(mean), list(std))).encode())
    return digest.hexdigest()[:16]


@torch.no_grad()
def teacher_outputs(
    teacher: nn.Module, dataset: ImageDataset, features: tuple[str, ...], mean, std, cache_dir: Path | None = None
) -> dict[str, torch.Tensor]:
    """{teacher_logits: (N, K) float32, teacher:<feature>: float16} for every image of `dataset`."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"teacher-{_fingerprint(teacher, dataset, features, mean, std)}.pt"
        if path.exists():
            return torch.load(path, map_location="cpu", weights_only=True)
    teacher.eval()
    chunks: dict[str, list[torch.Tensor]] = {LOGITS: [], **{feature_key(f): [] for f in features}}
    for x, _ in iterate_eval(dataset, mean, std, 512):
        logits, feats = teacher.forward_features(x)
        chunks[LOGITS].append(logits)
        for f in features:
            chunks[feature_key(f)].append(feats[f].half().contiguous())
    out = {k: torch.cat(v) for k, v in chunks.items()}
    if path is not None:
        atomic_torch_save(out, path)
    return out


def cached_teacher_view(batch: dict[str, torch.Tensor], features: tuple[str, ...]):
    """The (logits, features) pair a method expects, read from a batch carrying cached teacher outputs."""
    return batch[LOGITS], {f: batch[feature_key(f)] for f in features}

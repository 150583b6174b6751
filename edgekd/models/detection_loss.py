"""Targets and loss for the CenterNet/FCOS-lite detectors of `edgekd.models.detectors`.

- Heatmap: one Gaussian per object on its class channel, peaking at exactly 1 on the cell that holds the box
  centre (CenterNet, Zhou et al. 2019, arXiv:1904.07850). Its spread follows the box shape, sigma = 0.54 *
  side / 6, as in TTFNet (Liu et al. AAAI 2020, arXiv:1909.00700), instead of CornerNet's radius rule.
- Heatmap loss: CenterNet's penalty-reduced variant of the focal loss (Lin et al. ICCV 2017), alpha 2,
  beta 4, normalised by the number of objects.
- Box loss: GIoU (Rezatofighi et al. CVPR 2019) between the box decoded from the predicted ltrb distances
  and the ground-truth box. Like TTFNet, every cell under an object's Gaussian regresses that object,
  weighted by the Gaussian, which gives far more box samples than CenterNet's centre cell alone. Where
  Gaussians overlap, the cell belongs to the object whose Gaussian is higher there.

Boxes come in input pixels: per image an (n, 4) x1y1x2y2 array and an (n,) array of class indices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

GAUSSIAN_ALPHA = 0.54  # TTFNet's ratio of Gaussian spread to box size
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0


def build_targets(
    boxes: list[np.ndarray],
    class_ids: list[np.ndarray],
    num_classes: int,
    output_size: tuple[int, int],
    stride: int,
    object_weights: list[np.ndarray] | None = None,
) -> dict[str, torch.Tensor]:
    """Heatmap (B, K, H, W), box (B, 4, H, W: x1y1x2y2 in strides), box weight (B, H, W) and positive weight
    (B, K, H, W) targets. `object_weights` (one (n,) array per image, default 1) scale an object's centre-cell
    focal term and its box regression: soft pseudo-labels weight each box by the teacher's confidence."""
    height, width = output_size
    batch = len(boxes)
    heatmap = np.zeros((batch, num_classes, height, width), np.float32)
    positive_weight = np.ones((batch, num_classes, height, width), np.float32)
    box_target = np.zeros((batch, 4, height, width), np.float32)
    box_weight = np.zeros((batch, height, width), np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    if object_weights is None:
        object_weights = [np.ones(len(np.asarray(c).reshape(-1)), np.float32) for c in class_ids]
    for b, (image_boxes, image_classes, weights) in enumerate(zip(boxes, class_ids, object_weights, strict=True)):
        for box, cls, weight in zip(
            np.asarray(image_boxes, np.float32).reshape(-1, 4) / stride,
            np.asarray(image_classes).reshape(-1),
            np.asarray(weights, np.float32).reshape(-1),
            strict=True,
        ):
            x1, y1, x2, y2 = box
            if x2 <= x1 or y2 <= y1:
                continue
            # The cell containing the centre; cell (i, j) covers [j, j + 1) x [i, i + 1) in stride units.
            col = min(int((x1 + x2) / 2), width - 1)
            row = min(int((y1 + y2) / 2), height - 1)
            sigma_x = max(GAUSSIAN_ALPHA * (x2 - x1) / 6, 1e-3)
            sigma_y = max(GAUSSIAN_ALPHA * (y2 - y1) / 6, 1e-3)
            dx2, dy2 = (cols - col) ** 2, (rows - row) ** 2
            gaussian = np.exp(-dx2 / (2 * sigma_x**2) - dy2 / (2 * sigma_y**2))
            heatmap[b, int(cls)] = np.maximum(heatmap[b, int(cls)], gaussian)
            positive_weight[b, int(cls), row, col] = weight
            owned = gaussian * weight > box_weight[b]
            box_weight[b][owned] = (gaussian * weight)[owned]
            box_target[b][:, owned] = box[:, None]
    return {
        "heatmap": torch.from_numpy(heatmap),
        "positive_weight": torch.from_numpy(positive_weight),
        "box": torch.from_numpy(box_target),
        "box_weight": torch.from_numpy(box_weight),
    }


def focal_loss(logits: torch.Tensor, target: torch.Tensor, positive_weight: torch.Tensor | None = None) -> torch.Tensor:
    """CenterNet's focal loss on heatmap logits against a Gaussian-splatted target, per object.

    `positive_weight` scales each centre cell's positive term (soft pseudo-labels); negatives are unweighted.
    """
    positive = target.eq(1).float()
    weight = positive if positive_weight is None else positive * positive_weight
    # log-sigmoid keeps log(p) and log(1 - p) finite for large logits.
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_loss = -((1 - p) ** FOCAL_ALPHA) * log_p * weight
    neg_loss = -((1 - target) ** FOCAL_BETA) * p**FOCAL_ALPHA * log_not_p * (1 - positive)
    return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1)


def cell_centres(height: int, width: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y of each cell centre in stride units, shaped (H, W)."""
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    return xs[None, :].expand(height, width), ys[:, None].expand(height, width)


def ltrb_to_boxes(ltrb: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) distances from each cell centre -> (B, 4, H, W) x1y1x2y2 boxes, both in stride units."""
    cx, cy = cell_centres(ltrb.shape[2], ltrb.shape[3], ltrb.device)
    left, top, right, bottom = ltrb.unbind(1)
    return torch.stack([cx - left, cy - top, cx + right, cy + bottom], 1)


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - GIoU of x1y1x2y2 boxes along the last dimension (Rezatofighi et al. 2019)."""
    area_pred = (pred[..., 2] - pred[..., 0]) * (pred[..., 3] - pred[..., 1])
    area_target = (target[..., 2] - target[..., 0]) * (target[..., 3] - target[..., 1])
    inter_wh = torch.minimum(pred[..., 2:], target[..., 2:]) - torch.maximum(pred[..., :2], target[..., :2])
    inter = inter_wh.clamp(min=0).prod(-1)
    union = area_pred + area_target - inter
    hull_wh = torch.maximum(pred[..., 2:], target[..., 2:]) - torch.minimum(pred[..., :2], target[..., :2])
    hull = hull_wh.prod(-1)
    eps = 1e-7
    iou = inter / (union + eps)
    return 1 - (iou - (hull - union) / (hull + eps))


def detection_loss(
    output: torch.Tensor,
    boxes: list[np.ndarray],
    class_ids: list[np.ndarray],
    stride: int,
    box_loss_weight: float = 2.0,
    object_weights: list[np.ndarray] | None = None,
) -> dict[str, torch.Tensor]:
    """Loss of a detector output (B, K + 4, H, W) against per-image pixel boxes and class indices.

    Returns {"loss", "heatmap", "box"} with loss = heatmap + box_loss_weight * box. The GIoU term lies in
    [0, 2] while the per-object focal term starts several times larger, hence a weight above 1.
    """
    num_classes = output.shape[1] - 4
    targets = build_targets(boxes, class_ids, num_classes, output.shape[2:], stride, object_weights)
    targets = {k: v.to(output.device) for k, v in targets.items()}
    heatmap_loss = focal_loss(output[:, :num_classes], targets["heatmap"], targets["positive_weight"])
    weight = targets["box_weight"]
    if weight.sum() > 0:
        pred_boxes = ltrb_to_boxes(output[:, num_classes:]).permute(0, 2, 3, 1)
        per_cell = giou_loss(pred_boxes, targets["box"].permute(0, 2, 3, 1))
        box_loss = (per_cell * weight).sum() / weight.sum()
    else:
        box_loss = output.sum() * 0.0  # keeps the graph connected on images without objects
    return {"loss": heatmap_loss + box_loss_weight * box_loss, "heatmap": heatmap_loss, "box": box_loss}

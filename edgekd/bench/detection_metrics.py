"""Detection metrics with the COCO protocol (Lin et al. ECCV 2014) through pycocotools' COCOeval.

Reports mAP@0.5, mAP@0.5:0.95 (101-point interpolated AP averaged over IoU 0.50:0.05:0.95), and the
precision and recall of the detections that pass a score threshold, matched at IoU 0.5 - the operating
point a deployed detector actually runs at - per class and overall. Torch-free (numpy + pycocotools): training,
export and `edgekd bench` on a device all score with it.
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from edgekd.errors import DatasetError

# Scores down to this enter the mAP (COCO ranks every detection); precision/recall use the operating threshold.
MAP_SCORE_FLOOR = 0.01


def _quiet_coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _complete_ground_truth(gt: dict) -> dict:
    """A copy with the fields COCOeval needs and hand-made datasets often omit (id, area, iscrowd)."""
    gt = copy.deepcopy(gt)
    for i, ann in enumerate(gt.get("annotations", [])):
        ann.setdefault("id", i + 1)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
        ann.setdefault("iscrowd", 0)
    gt.setdefault("annotations", [])
    return gt


def _results(gt: dict, detections: list, category_ids: list[int]) -> list[dict]:
    results = []
    for image, (boxes, scores, class_ids) in zip(gt["images"], detections, strict=True):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for (x1, y1, x2, y2), score, cls in zip(boxes, np.ravel(scores), np.ravel(class_ids), strict=True):
            if not 0 <= cls < len(category_ids):
                raise DatasetError(f"class id {cls} out of range for {len(category_ids)} categories")
            results.append(
                {
                    "image_id": image["id"],
                    "category_id": category_ids[int(cls)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return results


def _operating_point(evaluator: COCOeval, category_id: int, score_threshold: float) -> tuple[int, int, int]:
    """True positives, false positives and ground-truth count of one class at IoU 0.5 above the threshold.

    COCOeval matches detections greedily by descending score, so a detection below the threshold can
    never take a match from one above it: its matches at IoU 0.5 are the ones a thresholded run gets.
    """
    all_areas = evaluator.params.areaRng[0]
    tp = fp = num_gt = 0
    for e in evaluator.evalImgs:
        if e is None or e["category_id"] != category_id or e["aRng"] != all_areas:
            continue
        passed = np.asarray(e["dtScores"]) >= score_threshold
        counted = passed & ~e["dtIgnore"][0].astype(bool)
        matched = e["dtMatches"][0] > 0
        tp += int((counted & matched).sum())
        fp += int((counted & ~matched).sum())
        num_gt += int((~e["gtIgnore"].astype(bool)).sum())
    return tp, fp, num_gt


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


THRESHOLD_CANDIDATES = np.round(np.arange(0.05, 0.96, 0.05), 2)


def coco_map(gt_coco_dict: dict, detections: list, score_threshold: float = 0.3, scan_thresholds: bool = False) -> dict:
    """COCO evaluation of `detections` against a COCO ground-truth dict.

    gt_coco_dict: {"images": [{"id", ...}], "annotations": [{"image_id", "category_id", "bbox": xywh}],
    "categories": [{"id", "name"}]}. detections: one (boxes (n, 4) x1y1x2y2, scores (n,), class_ids (n,))
    per image, in the order of gt_coco_dict["images"]; class id i means gt_coco_dict["categories"][i].

    Returns {"precision", "recall", "map50", "map", "num_gt", "score_threshold", "per_class": {name: {...}}}.
    Overall precision and recall pool the matches of all classes; overall mAPs average the classes that
    have ground truth (classes without ground truth report None). With `scan_thresholds`, also
    "best_f1_threshold": the score threshold (0.05 steps) with the highest pooled F1 at IoU 0.5.
    """
    if len(detections) != len(gt_coco_dict.get("images", [])):
        raise DatasetError(
            f"{len(detections)} detection entries for {len(gt_coco_dict.get('images', []))} "
            "images; pass one (boxes, scores, class_ids) per image"
        )
    gt = _complete_ground_truth(gt_coco_dict)
    categories = gt["categories"]
    category_ids = [c["id"] for c in categories]
    results = _results(gt, detections, category_ids)
    gt_counts = {
        cid: sum(1 for a in gt["annotations"] if a["category_id"] == cid and not a["iscrowd"]) for cid in category_ids
    }

    per_class, totals = {}, np.zeros(3, dtype=np.int64)
    if results:
        coco_gt = _quiet_coco(gt)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(results)
            evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
            most_per_image = max(len(np.ravel(scores)) for _, scores, _ in detections)
            evaluator.params.maxDets = [1, 10, max(100, most_per_image)]  # never truncate our detections
            evaluator.evaluate()
            evaluator.accumulate()
        # precision: [IoU threshold, recall threshold, category, area range, max dets]; -1 where no GT.
        precision = evaluator.eval["precision"][:, :, :, 0, -1]
    for category in categories:
        cid = category["id"]
        stats = {"precision": 0.0, "recall": 0.0, "map50": 0.0, "map": 0.0, "num_gt": gt_counts[cid]}
        if results:
            tp, fp, num_gt = _operating_point(evaluator, cid, score_threshold)
            totals += (tp, fp, num_gt)
            stats["precision"], stats["recall"] = _ratio(tp, tp + fp), _ratio(tp, num_gt)
            curve = precision[:, :, evaluator.params.catIds.index(cid)]
            stats["map50"], stats["map"] = float(curve[0].mean()), float(curve.mean())
        else:
            totals[2] += gt_counts[cid]
        if gt_counts[cid] == 0:
            stats["map50"] = stats["map"] = None
        per_class[category.get("name", str(cid))] = stats

    best_f1_threshold = None
    if scan_thresholds and results:
        f1 = []
        for threshold in THRESHOLD_CANDIDATES:
            counts = np.sum([_operating_point(evaluator, c, threshold) for c in category_ids], axis=0)
            tp, fp, num_gt = (int(v) for v in counts)
            f1.append(_ratio(2 * tp, 2 * tp + fp + (num_gt - tp)))
        best_f1_threshold = float(THRESHOLD_CANDIDATES[int(np.argmax(f1))])
    scored = [s for s in per_class.values() if s["map"] is not None]
    tp, fp, num_gt = (int(t) for t in totals)
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, num_gt),
        "map50": float(np.mean([s["map50"] for s in scored])) if scored else 0.0,
        "map": float(np.mean([s["map"] for s in scored])) if scored else 0.0,
        "num_gt": num_gt,
        "score_threshold": score_threshold,
        "best_f1_threshold": best_f1_threshold,
        "per_class": per_class,
    }

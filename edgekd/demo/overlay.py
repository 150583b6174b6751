"""Drawing on a frame: a box and score per face, and a status bar with the detector, FPS and latency."""

from __future__ import annotations

import cv2
import numpy as np

from edgekd.runtime.engine import Detections

BOX_BGR = (0, 255, 0)  # pure green: easy to see, and easy for the tests to find in a recorded video
FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_detections(frame: np.ndarray, detections: Detections) -> None:
    """Boxes and "label score" tags, in place on a BGR frame; line width follows the frame size."""
    thickness = max(2, round(max(frame.shape[:2]) / 320))
    for box, score, label in zip(detections.boxes, detections.scores, detections.labels, strict=False):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(frame, (x1, y1), (x2, y2), BOX_BGR, thickness)
        tag = f"{label} {score:.2f}"
        (w, h), base = cv2.getTextSize(tag, FONT, 0.5, 1)
        top = max(0, y1 - h - base - 2)  # above the box, or inside it at the top edge of the frame
        cv2.rectangle(frame, (x1, top), (x1 + w + 4, top + h + base + 2), BOX_BGR, cv2.FILLED)
        cv2.putText(frame, tag, (x1 + 2, top + h + 1), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


def draw_status(frame: np.ndarray, text: str) -> None:
    """One line of white text on a dark band across the top of a BGR frame, shrunk to fit a small frame."""
    (w, _), _ = cv2.getTextSize(text, FONT, 0.5, 1)
    scale = min(0.5, 0.5 * (frame.shape[1] - 12) / w)
    (_, h), base = cv2.getTextSize(text, FONT, scale, 1)
    band = frame[: h + base + 8]
    band[:] = (band * 0.35).astype(np.uint8)  # darkened, not black: the picture stays visible underneath
    cv2.putText(frame, text, (6, h + 4), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def status_line(metrics: dict) -> str:
    faces = metrics["faces"]
    return (
        f"{metrics['detector']} | {metrics['fps']:.1f} FPS | detect {metrics['latency_ms']:.1f} ms "
        f"(p95 {metrics['latency_p95_ms']:.1f}) | {faces} face{'' if faces == 1 else 's'}"
    )

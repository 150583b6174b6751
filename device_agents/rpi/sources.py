"""Where the agent's frames come from: a camera (`camera:0`, through cv2.VideoCapture), a video file, or a folder
of images (cycled). Frames are H x W x 3 uint8 RGB, as the engine expects."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgekd.errors import ConfigError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class FrameSource:
    def __init__(self, spec: str):
        self.spec = spec
        self.images: list[Path] = []
        self.capture = None
        self._next = 0
        if spec.startswith("camera:"):
            self.kind = "camera"
            self.capture = cv2.VideoCapture(int(spec.split(":", 1)[1] or 0))
        elif Path(spec).is_dir():
            self.kind = "images"
            self.images = sorted(p for p in Path(spec).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.images:
                raise ConfigError(f"{spec}: no images (.jpg, .png, .bmp) in this folder")
        elif Path(spec).is_file():
            self.kind = "video"
            self.capture = cv2.VideoCapture(spec)
        else:
            raise ConfigError(f"--source {spec}: not camera:N, a video file or an image folder")
        if self.capture is not None and not self.capture.isOpened():
            raise ConfigError(f"--source {spec}: cannot open it")

    def read(self) -> np.ndarray:
        if self.kind == "images":
            path = self.images[self._next % len(self.images)]
            self._next += 1
            bgr = cv2.imread(str(path))
            if bgr is None:
                raise ConfigError(f"{path}: not a readable image")
        else:
            ok, bgr = self.capture.read()
            if not ok and self.kind == "video":  # loop the file
                self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self.capture.read()
            if not ok:
                raise ConfigError(f"--source {self.spec}: no frame")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def describe(self) -> dict:
        name = self.spec if self.kind == "camera" else Path(self.spec).name
        return {"kind": self.kind, "name": name}

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()

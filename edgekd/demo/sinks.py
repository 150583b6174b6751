"""Where annotated frames go besides the web page: a desktop window and an .mp4 file.

A sink has `show(frame_bgr, metrics) -> bool` (False: the user asked to stop) and `close()`.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgekd.errors import ConfigError


def display_available() -> tuple[bool, str]:
    """Whether cv2.imshow can open a window here, and if not, why (shown to the user)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    gui = next((line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")), "")
    if gui.split(":", 1)[-1].strip().upper() in ("", "NONE"):
        return False, "this OpenCV build has no GUI (opencv-python-headless); pip install opencv-python for a window"
    return True, ""


class WindowSink:
    """cv2.imshow; `q` or Esc in the window stops the demo."""

    def __init__(self, title: str = "edgekd demo face"):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, frame: np.ndarray, metrics: dict) -> bool:
        cv2.imshow(self.title, frame)
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class RecorderSink:
    """The annotated frames as an MPEG-4 Part 2 (`mp4v`) video: a codec every OpenCV wheel's FFmpeg can write,
    unlike H.264. The writer opens at the first frame, when the size is known."""

    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path, self.fps, self.writer, self.frames = Path(path), fps, None, 0
        if not self.path.parent.is_dir():
            raise ConfigError(f"--record {path}: the folder {self.path.parent} does not exist")

    def show(self, frame: np.ndarray, metrics: dict) -> bool:
        if self.writer is None:
            height, width = frame.shape[:2]
            self.size = (width, height)
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise ConfigError(f"--record {self.path}: OpenCV cannot write an mp4v video there")
        if frame.shape[1::-1] != self.size:  # a folder's images differ in size; the writer drops such frames
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)
        self.frames += 1
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()

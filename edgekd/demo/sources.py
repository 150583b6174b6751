"""Where the demo's frames come from: a camera index, a video file or a folder of images. Torch-free.

Every source is an iterator of BGR uint8 frames (OpenCV's order, which the overlay and every sink use) and
closes its device when done. A source that cannot give a single frame raises EdgeKDError naming it, so that the
CLI exits with a message instead of a window that never opens.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgekd.errors import EdgeKDError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class SourceError(EdgeKDError):
    """A camera, video or folder that cannot be read."""


def _wait_until(due: float) -> float:
    """Sleep until `due` (perf_counter seconds); returns when the frame was shown. When detection fell behind the
    clock the schedule restarts from now, so that playback does not race to catch up."""
    now = time.perf_counter()
    if due > now:
        time.sleep(due - now)
        return due
    return now


class CaptureSource:
    """A camera (V4L2 index), a video file or a network stream through cv2.VideoCapture.

    `realtime`: sleep so that a file plays at its own frame rate (a viewer sees normal speed); without it a file
    is read as fast as the detector allows (recording, tests). A camera paces itself. `loop`: restart a file at
    its end, for an unattended demo page."""

    def __init__(self, spec: str | int, realtime: bool = False, loop: bool = False):
        self.is_camera = isinstance(spec, int) or str(spec).isdigit()
        self.is_stream = "://" in str(spec)  # rtsp:// or http:// (an IP camera), read by OpenCV's FFmpeg
        self.name = f"camera {spec}" if self.is_camera else str(spec)
        if not (self.is_camera or self.is_stream or Path(spec).is_file()):
            raise SourceError(
                f"{spec}: no such video file (--source takes a camera index, a video, a folder or an rtsp:// URL)"
            )
        self.capture = cv2.VideoCapture(int(spec) if self.is_camera else str(spec))
        self.first = self._read() if self.capture.isOpened() else None
        if self.first is None:
            self.capture.release()
            if self.is_camera:
                raise SourceError(
                    f"camera {spec} cannot be opened or gives no frame (is /dev/video{spec} there and free?); "
                    "on a machine without a camera use --source VIDEO or --source FOLDER"
                )
            if self.is_stream:
                raise SourceError(f"{spec}: OpenCV cannot open this stream or gets no frame from it")
            raise SourceError(f"{spec}: OpenCV cannot decode this video (corrupt, empty or an unknown codec)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        live = self.is_camera or self.is_stream  # they pace themselves and cannot rewind
        self.realtime = realtime and not live
        self.loop = loop and not live

    def _read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        return frame if ok and frame is not None and frame.size else None

    def __iter__(self) -> Iterator[np.ndarray]:
        frame, due = self.first, time.perf_counter()
        try:
            while frame is not None:
                if self.realtime:
                    due = _wait_until(due + 1.0 / self.fps)
                yield frame
                frame = self._read()
                if frame is None and self.loop:
                    self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    frame = self._read()
        finally:
            self.capture.release()


class FolderSource:
    """The images of a folder in name order, shown `fps` per second when `realtime` (a slide show), else as fast
    as the detector allows. Unreadable images are skipped with a warning on stderr."""

    def __init__(self, folder: str | Path, realtime: bool = False, loop: bool = False, fps: float = 2.0):
        self.name = str(folder)
        self.paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise SourceError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        self.fps, self.realtime, self.loop = fps, realtime, loop

    def __iter__(self) -> Iterator[np.ndarray]:
        due, shown = time.perf_counter(), 0
        while True:
            for path in self.paths:
                frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if frame is None:
                    print(f"warning: {path}: not a readable image, skipped", file=sys.stderr)
                    continue
                if self.realtime:
                    due = _wait_until(due + 1.0 / self.fps)
                shown += 1
                yield frame
            if not self.loop or not shown:
                return


def open_source(spec: str | int, realtime: bool = False, loop: bool = False) -> CaptureSource | FolderSource:
    """`0`, `1`, ...: a camera; a folder: its images; `rtsp://...`: a network camera; else a video file."""
    if not isinstance(spec, int) and Path(spec).is_dir():
        return FolderSource(spec, realtime, loop)
    return CaptureSource(spec, realtime, loop)

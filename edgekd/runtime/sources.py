"""Where frames come from, for `edgekd demo face` and the Raspberry Pi agent. Torch-free; imports nothing of edgekd
but `errors`.

    open_source(spec, realtime=False, loop=False)   # iterator of BGR uint8 frames; .name, .kind, .fps, .close()

`spec` (what `--source` takes):

    0, 1, ... or camera:0     a V4L2 camera (a USB webcam) through cv2.VideoCapture
    picam or picam:1          the Raspberry Pi Camera Module (CSI, libcamera) through picamera2, imported only then
                              (`picam` is always the camera: write ./picam for a folder of that name)
    rtsp://... or http://...  a network stream (an IP camera) through OpenCV's FFmpeg
    a folder                  its images, subfolders included, in path order
    anything else             a video file

Every source is an iterator of BGR uint8 frames (OpenCV's order, which the overlay, the sinks and the agent's
RGB conversion expect) and releases its device when the iteration ends or `close()` is called. A source that
cannot give a single frame raises SourceError naming the spec and what is wrong, so that a command exits with a
message instead of a window that never opens.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from edgekd.errors import ConfigError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SPECS = (
    "--source takes a camera index (0 or camera:0), picam or picam:N (Raspberry Pi Camera Module), "
    "a video file, an image folder or an rtsp:// URL"
)
PICAM_SIZE = (640, 480)  # width, height of the Camera Module's frames: what a detector of 96..320 px needs
PICAM_FPS = 30.0
PICAMERA2_INSTALL = (
    "on Raspberry Pi OS: sudo apt install python3-picamera2 (a venv sees it only when created with "
    "python3 -m venv --system-site-packages; pip's picamera2 needs libcamera's Python bindings, which only apt "
    "provides)"
)


class SourceError(ConfigError):
    """A camera, video, stream or folder that cannot be read, or a --source that names none."""


def _number(spec: str, prefix: str, bare: bool) -> int | None:
    """N of `prefix:N` (and of `prefix` alone, meaning 0, when `bare`); None when `spec` is something else."""
    if not (spec.startswith(prefix + ":") or (bare and spec == prefix)):
        return None
    number = spec[len(prefix) + 1 :] or "0"
    if not number.isdigit():
        raise SourceError(f"{spec}: expected {prefix}:N with N a camera number, e.g. {prefix}:0 ({SPECS})")
    return int(number)


def camera_index(spec: str | int | Path) -> int | None:
    """The V4L2 camera number of `0`, `"0"` or `"camera:0"`; None for any other spec."""
    if isinstance(spec, int):
        return spec
    text = str(spec)
    return int(text) if text.isdigit() else _number(text, "camera", bare=False)


def _safe_name(url: str) -> str:
    """A stream URL without its password: the name is shown on the demo page and sent in agent reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user_info, host = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=f"{user_info.split(':', 1)[0]}:***@{host}").geturl()


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
    is read as fast as the caller asks (recording, the agent's timing, tests). A camera paces itself. `loop`:
    restart a file at its end, for an unattended demo page or an agent measuring forever."""

    def __init__(self, spec: str | int | Path, realtime: bool = False, loop: bool = False):
        index = camera_index(spec)
        self.kind = "camera" if index is not None else "stream" if "://" in str(spec) else "video"
        self.name = f"camera {index}" if index is not None else _safe_name(str(spec))
        if self.kind == "video" and not Path(spec).is_file():
            raise SourceError(f"{spec}: no such video file or folder ({SPECS})")
        self.capture = cv2.VideoCapture(index if index is not None else str(spec))
        self.first = self._read() if self.capture.isOpened() else None
        if self.first is None:
            self.close()
            if self.kind == "camera":
                raise SourceError(
                    f"camera {index} cannot be opened or gives no frame (is /dev/video{index} there and free?); "
                    "a Raspberry Pi Camera Module (ribbon cable) is --source picam; on a machine without a camera "
                    "use --source VIDEO or --source FOLDER"
                )
            if self.kind == "stream":
                raise SourceError(f"{self.name}: OpenCV cannot open this stream or gets no frame from it")
            raise SourceError(f"{spec}: OpenCV cannot decode this video (corrupt, empty or an unknown codec)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        live = self.kind != "video"  # a camera or a stream paces itself and cannot rewind
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
            self.close()

    def close(self) -> None:
        self.capture.release()  # releasing twice is harmless


class FolderSource:
    """The images of a folder and its subfolders in path order, shown `fps` per second when `realtime` (a slide
    show), else as fast as the caller asks. An unreadable image is skipped with a warning on stderr, once."""

    kind = "images"

    def __init__(self, folder: str | Path, realtime: bool = False, loop: bool = False, fps: float = 2.0):
        self.name = str(folder)
        self.paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise SourceError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        self.fps, self.realtime, self.loop = fps, realtime, loop

    def __iter__(self) -> Iterator[np.ndarray]:
        due = time.perf_counter()
        while True:
            for path in list(self.paths):
                frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if frame is None:
                    print(f"warning: {path}: not a readable image, skipped", file=sys.stderr)
                    self.paths.remove(path)  # warned once: a looping source does not repeat it every pass
                    continue
                if self.realtime:
                    due = _wait_until(due + 1.0 / self.fps)
                yield frame
            if not self.loop or not self.paths:
                return

    def close(self) -> None:
        pass  # every image is closed once read


class PicameraSource:
    """The Raspberry Pi Camera Module (CSI) through picamera2, the libcamera library Raspberry Pi OS ships: OpenCV's
    V4L2 backend cannot read this camera on Bookworm. `camera`: libcamera's camera number (`picam:1` is the second
    connector of a Pi 5 or a CM4); `size`: (width, height) of the frames. A camera paces itself: no realtime, no
    loop."""

    kind = "picam"

    def __init__(self, camera: int = 0, size: tuple[int, int] = PICAM_SIZE, fps: float = PICAM_FPS):
        self.name = f"picam:{camera}"
        try:
            from picamera2 import Picamera2  # only here: it exists on a Raspberry Pi only
        except ImportError as error:  # ModuleNotFoundError, or picamera2 without its libcamera bindings
            raise SourceError(
                f"{self.name}: the picamera2 library is not installed ({error}); {PICAMERA2_INSTALL}"
            ) from error
        self.camera, self.fps = None, fps
        try:
            self.camera = Picamera2(camera_num=camera)
            # picamera2's format names follow libcamera/DRM, which name a pixel from its most significant byte:
            # "RGB888" is 24 bits per pixel stored [B, G, R] in memory (Picamera2 manual, appendix on pixel
            # formats; its own code in picamera2/request.py maps "RGB888" to PIL's raw mode "BGR"). So
            # capture_array() gives H x W x 3 BGR, OpenCV's order, with no conversion. Some third-party examples
            # add cv2.COLOR_RGB2BGR after capture_array(): that swaps red and blue.
            period_us = round(1_000_000 / fps)
            config = self.camera.create_video_configuration(
                main={"size": tuple(size), "format": "RGB888"},
                controls={"FrameDurationLimits": (period_us, period_us)},  # a fixed rate: the .mp4's fps is true
            )
            self.camera.configure(config)
            self.camera.start()
            self.first = self._capture()
        except SourceError:
            self.close()
            raise
        except Exception as error:  # libcamera says "Camera __init__ sequence did not complete", IndexError, ...
            self.close()
            raise SourceError(
                f"{self.name}: libcamera cannot open camera {camera} ({type(error).__name__}: {error}); "
                "is the ribbon cable seated and the camera listed by `rpicam-hello --list-cameras`, and is no other "
                "process (rpicam-*, another demo or agent) holding it?"
            ) from error

    def _capture(self) -> np.ndarray:
        try:
            frame = self.camera.capture_array("main")
        except Exception as error:  # the camera went away mid-run
            raise SourceError(f"{self.name}: capturing a frame failed ({type(error).__name__}: {error})") from error
        if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            shape = None if frame is None else frame.shape
            raise SourceError(f"{self.name}: expected H x W x 3 frames from picamera2 (RGB888), got {shape}")
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            frame = self.first
            while True:
                yield frame
                frame = self._capture()
        finally:
            self.close()

    def close(self) -> None:
        camera, self.camera = self.camera, None
        if camera is not None:
            try:
                camera.stop()  # stopping a camera that never started is a no-op in picamera2
            finally:
                camera.close()


def open_source(
    spec: str | int | Path, realtime: bool = False, loop: bool = False
) -> CaptureSource | FolderSource | PicameraSource:
    """The source `spec` names (see the module's docstring); SourceError when it names none or gives no frame."""
    if not isinstance(spec, int):
        picam = _number(str(spec), "picam", bare=True)
        if picam is not None:
            return PicameraSource(picam)
        if Path(spec).is_dir():
            return FolderSource(spec, realtime, loop)
    return CaptureSource(spec, realtime, loop)

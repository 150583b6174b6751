"""edgekd.runtime.sources, the one frame-source module of the demo and the Pi agent: videos made with
cv2.VideoWriter, folders of images, bad specs, and the Raspberry Pi Camera Module through a fake `picamera2`
module put in sys.modules (no camera here: the library's API is the unit boundary)."""

import sys
import types
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from device_agents.rpi.sources import FrameSource
from edgekd.cli import main
from edgekd.errors import ConfigError
from edgekd.runtime.sources import (
    CaptureSource,
    FolderSource,
    PicameraSource,
    SourceError,
    _safe_name,
    camera_index,
    open_source,
)

COLOURS_BGR = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]  # blue, green, red: frame i of a clip is colour i


def _clip(path: Path, frames: int = 3, size=(48, 32)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), COLOURS_BGR[i % 3], np.uint8))
    writer.release()
    return path


def _colour(frame: np.ndarray) -> int:
    """Which of COLOURS_BGR a BGR frame is (its strongest channel)."""
    return int(np.argmax(frame.reshape(-1, 3).mean(axis=0)))


# ------------------------------------------------------------------ videos, folders, specs


def test_video_plays_in_order_then_ends_or_loops(tmp_path):
    path = _clip(tmp_path / "clip.avi")
    source = open_source(path)
    assert isinstance(source, CaptureSource) and source.kind == "video" and source.fps == pytest.approx(10)
    frames = list(source)
    assert [_colour(f) for f in frames] == [0, 1, 2] and all(f.shape == (32, 48, 3) for f in frames)
    looped = list(islice(open_source(str(path), loop=True), 7))
    assert [_colour(f) for f in looped] == [0, 1, 2, 0, 1, 2, 0]


def test_folder_gives_images_of_subfolders_in_path_order_and_skips_a_corrupt_one_once(tmp_path, capsys):
    (tmp_path / "b").mkdir()
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30, 3), COLOURS_BGR[0], np.uint8))
    cv2.imwrite(str(tmp_path / "b" / "c.jpg"), np.full((20, 30, 3), COLOURS_BGR[2], np.uint8))
    (tmp_path / "b" / "bad.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("not an image either: not even listed")
    source = open_source(tmp_path, loop=True)
    assert isinstance(source, FolderSource) and source.kind == "images"
    frames = list(islice(source, 4))  # two passes
    assert [_colour(f) for f in frames] == [0, 2, 0, 2]
    assert capsys.readouterr().err.count("bad.jpg: not a readable image, skipped") == 1


def test_folder_without_a_readable_image_ends_even_when_looping(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"not an image")
    assert list(open_source(tmp_path, loop=True)) == []
    source = FrameSource(str(tmp_path))
    with pytest.raises(ConfigError, match=f"--source {tmp_path}: no frame"):
        source.read()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing.mp4", "missing.mp4: no such video file or folder (--source takes a camera index"),
        ("camera:x", "camera:x: expected camera:N with N a camera number"),
        ("picam:first", "picam:first: expected picam:N with N a camera number"),
        ("empty", "empty: no images (.bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp) in this folder"),
        ("bad.mp4", "bad.mp4: OpenCV cannot decode this video"),
    ],
)
def test_bad_specs_name_the_spec_and_the_problem(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    with pytest.raises(SourceError) as caught:
        open_source(spec)
    assert message in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # the agent's adapter raises the same error, a ConfigError
        FrameSource(spec)
    assert message in str(caught.value)


def test_camera_specs():
    assert [camera_index(s) for s in (0, "3", "camera:2", "camera:")] == [0, 3, 2, 0]
    assert camera_index("clip.mp4") is None and camera_index("camera") is None  # a folder may be called camera
    with pytest.raises(SourceError, match="camera 97 cannot be opened .* --source picam"):
        open_source("camera:97")


def test_a_stream_is_named_without_its_password():
    assert _safe_name("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    assert _safe_name("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"


def test_close_releases_a_source_that_was_never_iterated(tmp_path):
    source = open_source(_clip(tmp_path / "clip.avi"))
    assert source.capture.isOpened()
    source.close()
    assert not source.capture.isOpened()


def test_agent_adapter_gives_rgb_and_describes_without_paths(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30, 3), COLOURS_BGR[0], np.uint8))
    source = FrameSource(str(tmp_path))
    frames = [source.read() for _ in range(3)]  # one image, cycled
    assert all(f.shape == (20, 30, 3) and f[..., 2].mean() > 150 and f[..., 0].mean() < 50 for f in frames)
    assert source.describe() == {"kind": "images", "name": tmp_path.name}
    source.close()


# ------------------------------------------------------------------ Raspberry Pi Camera Module (fake picamera2)


class FakePicamera2:
    """What edgekd uses of picamera2.Picamera2, recording every call. `capture_array` returns what picamera2's
    "RGB888" gives: H x W x 3 in [B, G, R] order; here a blue picture whose top-left pixel counts the frames."""

    opened: list["FakePicamera2"] = []
    fail_open: Exception | None = None
    fail_capture_after: int | None = None

    def __init__(self, camera_num=0):
        if FakePicamera2.fail_open is not None:
            raise FakePicamera2.fail_open
        self.camera_num, self.calls, self.config, self.captured = camera_num, [], None, 0
        FakePicamera2.opened.append(self)

    def create_video_configuration(self, main=None, controls=None, **rest):
        return {"main": dict(main or {}), "controls": dict(controls or {}), **rest}

    def configure(self, config):
        self.calls.append("configure")
        self.config = config

    def start(self):
        self.calls.append("start")

    def capture_array(self, name="main"):
        assert "start" in self.calls and name == "main"
        if FakePicamera2.fail_capture_after is not None and self.captured >= FakePicamera2.fail_capture_after:
            raise RuntimeError("Camera frontend has timed out!")
        width, height = self.config["main"]["size"]
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = 200  # blue, stored first: BGR
        self.captured += 1
        frame[0, 0] = (self.captured, self.captured, self.captured)
        return frame

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")


@pytest.fixture
def picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(FakePicamera2, "opened", [])
    monkeypatch.setattr(FakePicamera2, "fail_open", None)
    monkeypatch.setattr(FakePicamera2, "fail_capture_after", None)
    return FakePicamera2


def test_picam_frames_are_bgr_of_the_configured_size_and_the_camera_is_closed(picamera2):
    source = open_source("picam:1")
    assert isinstance(source, PicameraSource) and source.kind == "picam" and source.name == "picam:1"
    (camera,) = picamera2.opened
    assert camera.camera_num == 1
    assert camera.config["main"] == {"size": (640, 480), "format": "RGB888"}
    assert camera.config["controls"] == {"FrameDurationLimits": (33333, 33333)} and source.fps == 30
    frames = iter(source)
    first = [next(frames) for _ in range(3)]
    assert all(f.shape == (480, 640, 3) for f in first)
    assert [int(f[0, 0, 0]) for f in first] == [1, 2, 3]  # a fresh capture each time, in order
    assert first[1][5, 5].tolist() == [200, 0, 0]  # BGR kept as it comes: no channel swap
    assert camera.calls == ["configure", "start"]
    frames.close()  # the caller stops iterating
    assert camera.calls == ["configure", "start", "stop", "close"]


def test_picam_size_reaches_the_configuration(picamera2):
    source = PicameraSource(0, size=(320, 240), fps=15)
    assert picamera2.opened[0].config["main"]["size"] == (320, 240) and source.first.shape == (240, 320, 3)
    assert picamera2.opened[0].config["controls"]["FrameDurationLimits"] == (66667, 66667)
    source.close()
    source.close()  # twice is harmless
    assert picamera2.opened[0].calls.count("close") == 1


def test_picam_in_the_agent_gives_rgb_and_closes(picamera2):
    source = FrameSource("picam")
    frame = source.read()
    assert frame.shape == (480, 640, 3) and frame[5, 5].tolist() == [0, 0, 200]  # RGB for the engine
    assert picamera2.opened[0].camera_num == 0
    assert source.describe() == {"kind": "picam", "name": "picam"}
    source.close()
    assert picamera2.opened[0].calls[-2:] == ["stop", "close"]


def test_picam_in_the_demo(picamera2, tmp_path):
    out = tmp_path / "out.mp4"
    args = ["demo", "face", "--source", "picam:0", "--record", str(out), "--max-frames", "3", "--no-window"]
    assert main(args) == 0
    capture = cv2.VideoCapture(str(out))
    recorded = [frame for ok, frame in iter(capture.read, (False, None)) if ok]
    assert len(recorded) == 3 and recorded[0].shape == (480, 640, 3)
    assert recorded[0][240:, :, 0].mean() > 150 and recorded[0][240:, :, 2].mean() < 50  # still blue
    assert picamera2.opened[0].calls[-2:] == ["stop", "close"]  # released when --max-frames stopped the loop


def test_picam_is_released_when_the_demo_cannot_start(picamera2, capsys):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        args = ["demo", "face", "--source", "picam", "--serve", f"127.0.0.1:{busy.getsockname()[1]}", "--no-window"]
        assert main(args) == 2
    finally:
        busy.close()
    assert "cannot listen there" in capsys.readouterr().err
    assert picamera2.opened[0].calls[-2:] == ["stop", "close"]


def test_missing_picamera2_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # `import picamera2` raises ImportError
    with pytest.raises(SourceError) as caught:
        open_source("picam")
    message = str(caught.value)
    assert message.startswith("picam:0: the picamera2 library is not installed")
    assert "sudo apt install python3-picamera2" in message and "--system-site-packages" in message
    with pytest.raises(ConfigError, match="picamera2 library is not installed"):
        FrameSource("picam:0")
    assert main(["demo", "face", "--source", "picam", "--record", str(tmp_path / "o.mp4"), "--no-window"]) == 2
    assert "sudo apt install python3-picamera2" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_a_camera_libcamera_cannot_open_is_a_clear_error(picamera2):
    picamera2.fail_open = RuntimeError("Camera __init__ sequence did not complete.")
    with pytest.raises(SourceError, match=r"picam:2: libcamera cannot open camera 2 \(RuntimeError: Camera __init__"):
        open_source("picam:2")


def test_a_camera_that_gives_no_frame_is_closed(picamera2):
    picamera2.fail_capture_after = 0
    with pytest.raises(SourceError, match="picam:0: capturing a frame failed .RuntimeError: Camera frontend"):
        open_source("picam")
    assert picamera2.opened[0].calls == ["configure", "start", "stop", "close"]


def test_a_camera_that_goes_away_mid_run_ends_with_an_error_and_is_closed(picamera2):
    picamera2.fail_capture_after = 2
    frames = iter(open_source("picam"))
    assert next(frames).shape == (480, 640, 3) and next(frames).shape == (480, 640, 3)
    with pytest.raises(SourceError, match="capturing a frame failed"):
        next(frames)
    assert picamera2.opened[0].calls[-2:] == ["stop", "close"]

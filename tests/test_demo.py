"""`edgekd demo face`: headless on a generated video of a real face photo, its web page in a real headless
Chromium, and the errors a user meets (missing video, no camera, corrupt model)."""

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import require_executable

from edgekd.cli import main
from edgekd.demo import run_demo
from edgekd.demo.detectors import load_detector
from edgekd.demo.sinks import display_available
from edgekd.runtime.manifest import write_manifest

FRAMES, SIZE, FACE = 30, (480, 360), 240  # frame width x height; side of the moving photo
BACKGROUND_BGR = (60, 90, 120)


def _face_photo() -> np.ndarray:
    """skimage's astronaut (Eileen Collins, public domain), cropped to head and shoulders: big enough for
    BlazeFace's short-range model, whose faces should fill a good part of the frame."""
    from skimage import data

    return cv2.resize(cv2.cvtColor(data.astronaut()[20:320, 80:380], cv2.COLOR_RGB2BGR), (FACE, FACE))


def _face_box(frame_index: int) -> tuple[float, float, float, float]:
    """Where the face is in frame `frame_index`: the photo slides from left to right, 60 px from the top."""
    x = frame_index * (SIZE[0] - FACE) // (FRAMES - 1)
    return x + FACE * 0.33, 60 + FACE * 0.21, x + FACE * 0.65, 60 + FACE * 0.52  # measured on the crop


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "face.mp4"
    photo = _face_photo()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, SIZE)
    for i in range(FRAMES):
        frame = np.full((SIZE[1], SIZE[0], 3), BACKGROUND_BGR, np.uint8)
        x = i * (SIZE[0] - FACE) // (FRAMES - 1)
        frame[60 : 60 + FACE, x : x + FACE] = photo
        writer.write(frame)
    writer.release()
    return path


def _frames(path: Path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    return frames


def _box_pixels(frame: np.ndarray) -> np.ndarray:
    """The overlay's pure-green box pixels, after mp4 compression."""
    b, g, r = (frame[..., i].astype(int) for i in range(3))
    return (g > 180) & (r < 100) & (b < 100)


@pytest.fixture
def headless(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def test_headless_demo_records_boxes_where_the_face_is(face_video, tmp_path, headless):
    out, summary_path = tmp_path / "out.mp4", tmp_path / "summary.json"
    assert main(["demo", "face", "--source", str(face_video), "--record", str(out), "--json", str(summary_path)]) == 0
    source, recorded = _frames(face_video), _frames(out)
    assert len(recorded) == FRAMES
    assert not any(_box_pixels(frame).any() for frame in source)  # the green comes from the overlay only
    for i, frame in enumerate(recorded):
        ys, xs = np.nonzero(_box_pixels(frame))
        assert xs.size, f"frame {i}: no box drawn"
        x1, y1, x2, y2 = _face_box(i)
        assert xs.min() <= (x1 + x2) / 2 <= xs.max() and ys.min() <= (y1 + y2) / 2 <= ys.max(), f"frame {i}"
        assert xs.max() - xs.min() < 2 * (x2 - x1) and ys.max() - ys.min() < 2 * (y2 - y1), f"frame {i}: box too big"
        assert np.abs(frame[-30:, :].astype(int) - source[i][-30:, :]).mean() < 8  # the picture itself is kept
    summary = json.loads(summary_path.read_text())
    assert summary["frames"] == FRAMES and summary["detector"] == "blazeface"
    assert summary["fps"] > 0 and 0 < summary["latency"]["p50_ms"] < 1000
    assert summary["faces_per_frame"] == 1.0


def _fixed_box_student(folder: Path) -> Path:
    """An exported-student stand-in: an ONNX detector with an edgekd manifest whose CenterNet output always
    holds one face at cell (row 5, col 6) of its 12 x 12 grid, 2 strides to each side: box (36, 28, 68, 60) in
    its 96 x 96 input. It tests the student path (manifest, engine, letterbox back to frame pixels, overlay)
    without training one."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constant = np.full((1, 5, 12, 12), -10.0, np.float32)
    constant[0, 0, 5, 6], constant[0, 1:, 5, 6] = 4.0, 2.0
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "grid"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed_box",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 96, 96])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 5, 12, 12])],
        [numpy_helper.from_array(np.zeros(1, np.float32), "zero"), numpy_helper.from_array(constant, "grid")],
    )
    path = folder / "student.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    pre = {"resize": "letterbox", "color": "gray", "scale": 1 / 255, "mean": [0.0], "std": [1.0]}
    tensor = {"dtype": "float32", "layout": "NCHW", "quantization": None}
    manifest = {
        "format": "onnx",
        "precision": "fp32",
        "task": "detect",
        "input": {"name": "input", "shape": [1, 1, 96, 96], **tensor, "preprocessing": pre},
        "outputs": [{"name": "output", "shape": [1, 5, 12, 12], **tensor}],
        "decoding": {"kind": "centernet", "stride": 8, "score_threshold": 0.4, "max_detections": 100},
        "labels": ["face"],
    }
    write_manifest(path, manifest)
    return path


def test_exported_student_runs_in_the_demo(face_video, tmp_path, headless):
    out, summary_path = tmp_path / "out.mp4", tmp_path / "summary.json"
    model = _fixed_box_student(tmp_path)
    args = ["--source", str(face_video), "--model", str(model), "--record", str(out), "--json", str(summary_path)]
    assert main(["demo", "face", *args, "--max-frames", "5"]) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["detector"] == "student.onnx" and "onnxruntime" in summary["runtime"]
    assert summary["frames"] == 5 and summary["faces_per_frame"] == 1.0
    # 480 x 360 letterboxed into 96 x 96: scale 0.2, 12 px of padding on top and bottom.
    ys, xs = np.nonzero(_box_pixels(_frames(out)[0]))
    assert abs(xs.min() - 36 / 0.2) <= 3 and abs(xs.max() - 68 / 0.2) <= 3 and abs(ys.max() - (60 - 12) / 0.2) <= 3


def test_run_demo_with_the_callers_own_parts_stops_on_request(tmp_path):
    """What the Raspberry Pi agent calls: its own frames, detector and sink, and a stop event."""
    cv2.imwrite(str(tmp_path / "a.png"), _face_photo())
    (tmp_path / "b.jpg").write_bytes(b"not an image")  # skipped with a warning
    stop, shown = threading.Event(), []

    class StopAfterThree:
        def show(self, frame, metrics):
            shown.append(metrics)
            if len(shown) == 3:
                stop.set()
            return True

        def close(self):
            shown.append("closed")

    from edgekd.runtime.sources import open_source

    frames = open_source(tmp_path, loop=True)  # loops forever: only the stop event ends it
    summary = run_demo(frames, load_detector("blazeface"), [StopAfterThree()], stop=stop, source_name="photos")
    assert summary["frames"] == 3 and summary["stopped_by"] == "stop requested" and shown[-1] == "closed"
    assert all(m["faces"] == 1 and m["scores"][0] > 0.5 for m in shown[:3])


def test_folder_of_mixed_sizes_is_recorded_whole(tmp_path, headless):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = _face_photo()
    cv2.imwrite(str(folder / "1.png"), photo)
    cv2.imwrite(str(folder / "2.jpg"), cv2.resize(photo, (300, 200)))  # the writer drops frames of another size
    out = tmp_path / "out.mp4"
    assert main(["demo", "face", "--source", str(folder), "--record", str(out)]) == 0
    recorded = _frames(out)
    assert len(recorded) == 2 and all(f.shape[:2] == photo.shape[:2] and _box_pixels(f).any() for f in recorded)


def test_network_stream_source(face_video, tmp_path, headless):
    """An IP camera's URL goes to OpenCV's FFmpeg; here an http:// URL of the test video."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = partial(SimpleHTTPRequestHandler, directory=str(face_video.parent))
    handler.log_message = lambda *args: None
    files = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{files.server_address[1]}/{face_video.name}"
        out = tmp_path / "out.mp4"
        assert main(["demo", "face", "--source", url, "--record", str(out), "--max-frames", "10"]) == 0
        assert len(_frames(out)) == 10
    finally:
        files.shutdown()
        files.server_close()


def test_served_page_in_headless_chromium_shows_the_stream_and_metrics(face_video, tmp_path):
    chromium = require_executable("chromium")
    summary_path = tmp_path / "summary.json"
    command = [sys.executable, "-m", "edgekd.cli", "demo", "face", "--source", str(face_video), "--loop"]
    command += ["--serve", "127.0.0.1:0", "--no-window", "--json", str(summary_path)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = None
        for line in server.stdout:  # the port is chosen by the OS and announced
            if match := re.search(r"serving the demo on (http://\S+)", line):
                url = match.group(1)
                break
        assert url, "the demo never announced its page"
        browser = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        browser += [f"--user-data-dir={tmp_path / 'c'}"]
        browser += ["--virtual-time-budget=3000", "--window-size=900,500"]
        shot = tmp_path / "page.png"
        subprocess.run([*browser, f"--screenshot={shot}", url], capture_output=True, timeout=60, check=True)
        dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True)
    finally:
        server.terminate()  # SIGTERM: the demo stops cleanly and writes its summary
        assert server.wait(timeout=20) == 0

    page = cv2.imread(str(shot))
    stream = page[40:420, 0:500]  # the <img> sits at the top left, 480 x 360
    assert stream.std() > 30, "the stream area is blank"
    assert _box_pixels(stream).sum() > 200, "no overlay box in the stream"
    background = np.all(np.abs(stream.astype(int) - BACKGROUND_BGR) < 20, axis=-1)
    assert background.mean() > 0.15, "the video's colours are not in the stream area"
    metrics = dict(re.findall(r'<dd id="(\w+)">([^<]*)</dd>', dom.stdout))
    assert metrics["detector"] == "blazeface" and metrics["faces"] == "1"
    assert 0 < float(metrics["fps"]) <= 16 and int(metrics["frames"]) > 0  # watched: paced at the file's 15 fps
    assert float(metrics["latency"].removesuffix(" ms")) > 0
    assert json.loads(summary_path.read_text())["frames"] > 0


def _corrupt_model(folder: Path) -> Path:
    """Garbage bytes with a manifest that matches them: only the runtime can tell it is no model."""
    path = folder / "student.tflite"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    tensor = {"name": "x", "shape": [1, 96, 96, 1], "dtype": "float32", "layout": "NHWC", "quantization": None}
    pre = {"resize": "letterbox", "color": "gray", "scale": 1 / 255, "mean": [0.0], "std": [1.0]}
    write_manifest(
        path,
        {
            "format": "tflite",
            "precision": "fp32",
            "task": "detect",
            "input": {**tensor, "preprocessing": pre},
            "outputs": [tensor],
            "decoding": {"kind": "centernet", "stride": 8},
            "labels": ["face"],
        },
    )
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing video", "no such video file"),
        ("corrupt video", "cannot decode this video"),
        ("no camera", "camera 97 cannot be opened"),
        ("corrupt model", "cannot load it"),
        ("model without manifest", "no manifest"),
        ("no readable image", "not a single readable frame"),
        ("nowhere to show", "nowhere to show the demo"),
        ("bad address", "expected HOST:PORT"),
    ],
)
def test_bad_input_is_a_clear_error(case, message, face_video, tmp_path, headless, capsys):
    args = ["--source", str(face_video), "--record", str(tmp_path / "out.mp4")]
    if case == "missing video":
        args[1] = str(tmp_path / "missing.mp4")
    elif case == "corrupt video":
        (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
        args[1] = str(tmp_path / "bad.mp4")
    elif case == "no camera":
        args[1] = "97"
    elif case == "corrupt model":
        args += ["--model", str(_corrupt_model(tmp_path))]
    elif case == "model without manifest":
        (tmp_path / "face.onnx").write_bytes(b"onnx?")
        args += ["--model", str(tmp_path / "face.onnx")]
    elif case == "no readable image":
        (tmp_path / "photos").mkdir()
        (tmp_path / "photos" / "a.jpg").write_bytes(b"not an image")
        args[1] = str(tmp_path / "photos")
    elif case == "nowhere to show":
        args = args[:2]
    else:
        args += ["--serve", "localhost"]
    assert main(["demo", "face", *args]) == 2
    assert message in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "out.mp4").exists()  # nothing half-written


def test_display_detection_explains_why_there_is_no_window(monkeypatch):
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    assert display_available() == (False, "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)")
    monkeypatch.setenv("DISPLAY", ":0")
    gui = "GUI:                           NONE" not in cv2.getBuildInformation()
    available, why = display_available()
    assert available == gui and (gui or "opencv-python-headless" in why)


def test_demo_runs_without_torch(face_video, tmp_path):
    """A Raspberry Pi has the core install only: the command and its loop must not import torch."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edgekd.cli import main\n"
        f"assert main(['demo', 'face', '--source', {str(face_video)!r}, '--record', {str(tmp_path / 'o.mp4')!r},"
        " '--max-frames', '3', '--no-window']) == 0\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert len(_frames(tmp_path / "o.mp4")) == 3


def test_the_pi_agent_serves_the_demo_of_its_deployed_model(face_video, tmp_path):
    """`edgekd deploy ... --demo HOST:PORT`: the agent (a real process, reporting to the local broker) runs the
    demo loop on its source with the bundle's model and serves the live page."""
    import urllib.request

    from edgekd.deploy.bundle import build_bundle
    from edgekd.fleet.mosquitto import free_port
    from tests.fleet_helpers import spawn, stop, wait_for

    port = free_port()
    settings = {"source": str(face_video), "demo": f"127.0.0.1:{port}", "interval": 0}
    bundle = build_bundle([_fixed_box_student(tmp_path)], tmp_path / "bundle", settings)
    args = ["-m", "device_agents.rpi.agent", "--bundle", bundle, "--device-id", "pi-demo"]
    agent = spawn([*args, "--broker", "mqtt://127.0.0.1:1883", "--spool", tmp_path / "spool"], tmp_path / "agent.log")

    def metrics() -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics.json", timeout=2) as response:
                value = json.loads(response.read())
        except OSError:
            return None
        return value if value.get("frames", 0) >= 5 else None

    try:
        live = wait_for(metrics, 60, "the agent's demo page")
        assert live["faces"] == 1 and live["fps"] > 0 and "student.onnx" in live["detector"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot.jpg", timeout=2) as response:
            snapshot = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
        assert snapshot.shape[:2] == (SIZE[1], SIZE[0]) and _box_pixels(snapshot).any()
    finally:
        assert stop(agent) == 0, (tmp_path / "agent.log").read_text()[-2000:]


def test_deploy_demo_needs_a_source_and_a_valid_address(tmp_path, capsys):
    model = str(tmp_path / "model.onnx")
    assert main(["deploy", "--target", "local", "--model", model, "--demo", "127.0.0.1:8080", "--dry-run"]) == 2
    assert "--demo needs --source" in capsys.readouterr().err
    bad = ["--demo", "nowhere", "--source", "camera:0", "--dry-run"]
    assert main(["deploy", "--target", "local", "--model", model, *bad]) == 2

"""The face demo loop: frames in, faces detected, boxes and metrics drawn, frames out to every sink. Torch-free.

`run_demo` is the loop itself, for any caller that builds its own source, detector and sinks (the Raspberry Pi
agent does); `face_demo` builds them from the options `edgekd demo face` takes and runs the loop.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from edgekd.bench.latency import latency_stats
from edgekd.demo.detectors import load_detector
from edgekd.demo.overlay import draw_detections, draw_status, status_line
from edgekd.demo.serve import StreamServer, parse_address
from edgekd.demo.sinks import RecorderSink, WindowSink, display_available
from edgekd.errors import ConfigError
from edgekd.runtime.sources import SourceError, open_source

WINDOW = 30  # frames in the rolling FPS and latency shown live: about a second at camera speed


def run_demo(
    source: Iterable[np.ndarray],
    detector,
    sinks: list,
    max_frames: int | None = None,
    stop: threading.Event | None = None,
    source_name: str = "",
) -> dict:
    """Detect faces on every BGR frame of `source` with `detector.detect(rgb) -> Detections`, draw them and the
    live metrics, and hand the frame to each sink's `show(frame, metrics)`. Ends when the source does, after
    `max_frames`, when `stop` is set, or when a sink's `show` returns False (a window's `q`); closes the sinks.

    Returns the run's summary: frames, seconds, fps (frames / wall time, everything included), detect latency
    statistics in ms (`edgekd.bench.latency.latency_stats`) and faces per frame."""
    started = time.perf_counter()
    stamps: deque[float] = deque(maxlen=WINDOW + 1)
    recent: deque[float] = deque(maxlen=WINDOW)
    all_latencies: deque[float] = deque(maxlen=100_000)  # the summary's statistics, bounded for a day-long demo
    frames = faces_total = 0
    stopped_by = "end of source"
    try:
        for frame in source:
            if stop is not None and stop.is_set():
                stopped_by = "stop requested"
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            before = time.perf_counter()
            detections = detector.detect(rgb)
            seconds = time.perf_counter() - before
            recent.append(seconds)
            all_latencies.append(seconds)
            stamps.append(time.perf_counter())
            frames += 1
            faces_total += len(detections)
            window = np.asarray(recent) * 1000
            metrics = {
                "detector": detector.name,
                "runtime": getattr(detector, "runtime", ""),
                "source": source_name,
                "frames": frames,
                "fps": (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0,
                "latency_ms": float(np.percentile(window, 50)),
                "latency_p95_ms": float(np.percentile(window, 95)),
                "faces": len(detections),
                "scores": [round(float(s), 3) for s in detections.scores],
                "boxes": [[round(float(v), 1) for v in box] for box in detections.boxes],
            }
            draw_detections(frame, detections)
            draw_status(frame, status_line(metrics))
            if not all([sink.show(frame, metrics) for sink in sinks]):  # every sink gets the frame, then stop
                stopped_by = "closed by the user"
                break
            if max_frames is not None and frames >= max_frames:
                stopped_by = "max frames"
                break
    finally:
        for sink in sinks:
            sink.close()
    elapsed = time.perf_counter() - started
    return {
        "detector": detector.name,
        "runtime": getattr(detector, "runtime", ""),
        "source": source_name,
        "frames": frames,
        "seconds": elapsed,
        "fps": frames / elapsed if elapsed > 0 else 0.0,
        "latency": latency_stats(list(all_latencies)) if frames else None,
        "faces_per_frame": faces_total / frames if frames else 0.0,
        "stopped_by": stopped_by,
    }


def face_demo(
    source: str | int = 0,
    model: str | Path | None = None,
    serve: str | None = None,
    record: str | Path | None = None,
    window: bool | None = None,
    threads: int = 1,
    score_threshold: float | None = None,
    max_frames: int | None = None,
    loop: bool = False,
    stop: threading.Event | None = None,
    announce: Callable[[str], None] = print,
) -> dict:
    """`edgekd demo face` as a function. `source`: camera index (or camera:N), picam[:N], video file, image folder
    or stream URL (`edgekd.runtime.sources`); `model`: an exported .onnx / .tflite with its manifest or blazeface /
    retinaface / haar (default blazeface); `serve`: HOST:PORT for the web page; `record`: an .mp4 path; `window`:
    None opens one when a display exists, True requires it. `announce` receives the page URL and notes. Returns
    `run_demo`'s summary."""
    can_show, why_not = display_available()
    if window and not can_show:
        raise ConfigError(f"cannot open a window: {why_not}; use --serve HOST:PORT or --record out.mp4")
    show_window = can_show if window is None else window
    if not (show_window or serve or record):
        raise ConfigError(
            f"nowhere to show the demo: {why_not}; use --serve HOST:PORT (a page any browser opens) or --record out.mp4"
        )
    if window is None and not can_show:
        announce(f"no window: {why_not}")
    if serve:
        parse_address(serve)  # a typo fails before the camera and the model are opened
    detector = load_detector(model, threads, score_threshold)  # before the source: a bad model fails fast
    # A file plays at its own speed when someone watches; when only recording, as fast as the detector runs.
    frames = open_source(source, realtime=bool(show_window or serve), loop=loop)
    sinks = []
    try:
        if record:
            sinks.append(RecorderSink(record, getattr(frames, "fps", 30.0)))
        if serve:
            server = StreamServer(serve)
            sinks.append(server)
            announce(f"serving the demo on {server.url} (Ctrl-C to stop)")
            if server.httpd.server_address[0] == "0.0.0.0":
                port = server.httpd.server_address[1]
                announce(f"and on http://{socket.gethostname()}:{port}/ (no password: anyone on the network can watch)")
        if show_window:
            sinks.append(WindowSink())
    except Exception:
        for sink in sinks:
            sink.close()
        frames.close()
        raise
    try:
        summary = run_demo(frames, detector, sinks, max_frames, stop, frames.name)
    finally:
        frames.close()  # release the camera now, not whenever the suspended iteration is collected
    if summary["frames"] == 0 and summary["stopped_by"] == "end of source":
        raise SourceError(f"{frames.name}: not a single readable frame")
    return summary

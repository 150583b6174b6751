"""The demo for any browser: a small HTTP server with the live annotated stream and its metrics. Torch-free.

    /              the page: the stream, and the metrics polled twice a second
    /stream.mjpg   MJPEG (multipart/x-mixed-replace): every browser shows it in an <img>, no JavaScript video
    /snapshot.jpg  the latest frame
    /metrics.json  FPS, detect latency, faces, frames, detector, source

MJPEG rather than WebRTC or HLS: no encoder beyond cv2.imencode and no client library, which is what a headless
Pi can afford. Each frame is JPEG-encoded once, however many browsers watch.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edgekd.errors import ConfigError

BOUNDARY = "edgekdframe"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgekd demo face</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { margin: 0; background: #111; color: #eee; font: 15px system-ui, sans-serif; }
 header { padding: 8px 14px; background: #222; }
 main { display: flex; flex-wrap: wrap; gap: 14px; padding: 14px; align-items: flex-start; }
 #stream { max-width: 100%; background: #000; min-width: 320px; min-height: 240px; }
 dl { display: grid; grid-template-columns: auto auto; gap: 4px 14px; margin: 0; }
 dt { color: #999; } dd { margin: 0; font-variant-numeric: tabular-nums; }
 #state.down { color: #f66; }
</style></head>
<body><header><b>edgekd demo face</b> &middot; <span id="state">connecting</span></header>
<main><img id="stream" alt="live annotated stream">
<dl>
 <dt>detector</dt><dd id="detector">-</dd>
 <dt>runtime</dt><dd id="runtime">-</dd>
 <dt>source</dt><dd id="source">-</dd>
 <dt>FPS</dt><dd id="fps">-</dd>
 <dt>detect p50</dt><dd id="latency">-</dd>
 <dt>detect p95</dt><dd id="latency_p95">-</dd>
 <dt>faces</dt><dd id="faces">-</dd>
 <dt>best score</dt><dd id="score">-</dd>
 <dt>frames</dt><dd id="frames">-</dd>
</dl></main>
<script>
// The stream starts after the page's load event, so that the never-ending response does not hold the load.
window.addEventListener("load", () => { document.getElementById("stream").src = "stream.mjpg"; });
const set = (id, text) => { document.getElementById(id).textContent = text; };
async function poll() {
  try {
    const m = await (await fetch("metrics.json", {cache: "no-store"})).json();
    set("state", m.running ? "live" : "stopped");
    document.getElementById("state").className = "";
    set("detector", m.detector); set("runtime", m.runtime); set("source", m.source);
    set("fps", m.fps.toFixed(1)); set("latency", m.latency_ms.toFixed(2) + " ms");
    set("latency_p95", m.latency_p95_ms.toFixed(2) + " ms"); set("faces", m.faces);
    set("score", m.scores.length ? m.scores[0].toFixed(2) : "-"); set("frames", m.frames);
  } catch (e) {
    set("state", "disconnected"); document.getElementById("state").className = "down";
  }
}
poll(); setInterval(poll, 500);
</script></body></html>
"""


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, or `:PORT` / `PORT` for every interface (a headless Pi is watched from another machine)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--serve {text}: expected HOST:PORT, e.g. 0.0.0.0:8080 (port 0: any free port)")
    return host or "0.0.0.0", int(port)


class StreamServer:
    """A sink that serves the latest annotated frame and metrics on its own threads."""

    def __init__(self, address: str, jpeg_quality: int = 80):
        host, port = parse_address(address)
        self.quality = jpeg_quality
        self.jpeg: bytes | None = None
        self.metrics: dict = {"running": False}
        self.sequence, self.closing = 0, False
        self.changed = threading.Condition()
        try:
            self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as error:
            raise ConfigError(f"--serve {address}: cannot listen there: {error.strerror or error}") from error
        self.httpd.daemon_threads = True  # a browser left open must not keep the process alive
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="edgekd-demo-http", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/"

    def show(self, frame: np.ndarray, metrics: dict) -> bool:
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        with self.changed:
            if ok:
                self.jpeg = encoded.tobytes()
            self.metrics = {**metrics, "running": True}
            self.sequence += 1
            self.changed.notify_all()
        return True

    def next_frame(self, seen: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        """The first frame newer than `seen` (waiting up to `timeout`), or (seen, None)."""
        with self.changed:
            self.changed.wait_for(lambda: self.sequence != seen or self.closing, timeout)
            if self.sequence == seen or self.jpeg is None:
                return seen, None
            return self.sequence, self.jpeg

    def close(self) -> None:
        with self.changed:
            self.closing = True
            self.metrics = {**self.metrics, "running": False}
            self.changed.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: StreamServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - one line per MJPEG frame would drown the console
            pass

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - the name http.server calls
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/metrics.json":
                self._send(json.dumps(server.metrics).encode(), "application/json")
            elif path == "/snapshot.jpg" and server.jpeg is not None:
                self._send(server.jpeg, "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self.send_error(404)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seen = -1
            try:
                while not server.closing:
                    seen, jpeg = server.next_frame(seen)
                    if jpeg is None:
                        continue
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away

    return Handler

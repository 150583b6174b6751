"""The agent's frames: `edgekd.runtime.sources` (camera:N, picam[:N], a video file, an image folder, a stream)
read one frame at a time. Videos and folders loop, so that every report can time `--frames` frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgekd.runtime.sources import SourceError, open_source


class FrameSource:
    def __init__(self, spec: str):
        self.spec = spec
        self.source = open_source(spec, loop=True)
        self.frames = iter(self.source)

    def read(self) -> np.ndarray:
        """The next frame, H x W x 3 uint8 RGB as the engine expects."""
        frame = next(self.frames, None)
        if frame is None:
            raise SourceError(f"--source {self.spec}: no frame (the camera or stream stopped, or no image is readable)")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def describe(self) -> dict:
        """`source` of a report: a file or folder by its base name (no home paths in reports), a stream without
        its password, a camera as given (camera:0, picam:0)."""
        kind = self.source.kind
        if kind in ("video", "images"):
            return {"kind": kind, "name": Path(self.spec).name}
        return {"kind": kind, "name": self.source.name if kind == "stream" else self.spec}

    def close(self) -> None:
        self.source.close()

"""Live face detection on a camera, a video or a folder: boxes, scores, FPS and latency, in a window, a web page
(MJPEG) or an .mp4. Torch-free, so it runs on a Raspberry Pi with the core install.

    from edgekd.demo import face_demo, run_demo
    face_demo(source=0, serve="0.0.0.0:8080")            # what `edgekd demo face --serve 0.0.0.0:8080` runs
    run_demo(frames, detector, sinks, stop=event)         # the loop alone, with the caller's own parts

See docs/demo.md.
"""

from edgekd.demo.face import face_demo, run_demo

__all__ = ["face_demo", "run_demo"]

"""Classify Raspberry Pi camera frames with a vitedge artifact, printing the top-k and the latency.

    sudo apt install python3-picamera2                   # picamera2 comes from Raspberry Pi OS, not PyPI
    python3 -m venv --system-site-packages ~/vitedge-env  # so the venv sees it
    ~/vitedge-env/bin/pip install 'vitedge[tflite]'       # or 'vitedge[onnx]'; no torch
    ~/vitedge-env/bin/python pi_camera.py artifacts/vit-b16-tflite --threads 4

`vitedge camera ARTIFACT` does the same from the command line; this file is the loop to copy into your
own program (save a frame when a class shows up, drive a GPIO pin, ...).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from vitedge.runtime import Classifier

HOW_TO_INSTALL = (
    "picamera2 is not available in this Python: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
    "and create your virtual environment with `python3 -m venv --system-site-packages`"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", help="a vitedge artifact folder (vitedge convert ... --out FOLDER)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="inference threads (default 4: a Pi 4 or 5's cores)")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (default: Ctrl-C)")
    args = parser.parse_args(argv)

    try:
        from picamera2 import Picamera2
    except ImportError:
        print(f"pi_camera: {HOW_TO_INSTALL}", file=sys.stderr)
        return 1

    classifier = Classifier.open(args.artifact, num_threads=args.threads)
    camera = Picamera2()
    # XBGR8888 arrives as (H, W, 4) uint8 in R, G, B, X order; RGB888 would be B, G, R.
    camera.configure(camera.create_preview_configuration(main={"size": (640, 480), "format": "XBGR8888"}))
    camera.start()
    frame_number = 0
    try:
        while not args.frames or frame_number < args.frames:
            frame = np.asarray(camera.capture_array())[..., :3]
            frame_number += 1
            started = time.perf_counter()
            result = classifier.predict(frame, top_k=args.top_k)
            latency_ms = (time.perf_counter() - started) * 1000
            top = "  ".join(f"{p.label} {p.score:.1%}" for p in result.predictions)
            print(f"frame {frame_number}  {latency_ms:.1f} ms  {top}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        camera.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

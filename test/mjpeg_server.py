"""A local MJPEG-over-HTTP camera (multipart/x-mixed-replace, like IP cameras and ``mjpg-streamer``)
that tests can stop and restart on the same port to simulate a network camera that disappears."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time

import cv2
import numpy as np


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fps: float, size: tuple[int, int]) -> None:
        super().__init__(address, _Handler)
        self.stopping = threading.Event()
        self.fps, self.size = fps, size


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        w, h = self.server.size
        i = 0
        try:
            while not self.server.stopping.is_set():
                _, jpg = cv2.imencode(".jpg", np.full((h, w, 3), (i * 8) % 256, np.uint8))
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                self.wfile.write(head + jpg.tobytes() + b"\r\n")
                i += 1
                time.sleep(1.0 / self.server.fps)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


class MjpegServer:
    """``with MjpegServer() as cam: cam.url ...; cam.stop(); cam.start()`` (same port after a restart)."""

    def __init__(self, fps: float = 30.0, size: tuple[int, int] = (64, 48)) -> None:
        self.fps, self.size = fps, size
        self.port = 0
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        self._server = _Server(("127.0.0.1", self.port), self.fps, self.size)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stopping.set()  # ends the open streams: the client sees the camera vanish
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

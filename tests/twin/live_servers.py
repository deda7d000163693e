"""Real local servers for the live-twin tests: a Mosquitto broker and an HTTP server, each on a free
port, and a helper that waits on a condition (never a fixed sleep)."""
from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path


def wait_for(cond, timeout_s: float = 30.0, what: str = "a condition"):
    """Poll ``cond()`` until it returns something truthy; fail after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    exe = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                             if Path(p).is_file()), None)
    if exe is None:
        raise AssertionError("mosquitto is not installed: run scripts/setup.sh as root (Debian package mosquitto)")
    return exe


class Broker:
    """A Mosquitto broker on a free port of 127.0.0.1 (anonymous, no persistence)."""

    def __init__(self, folder: Path):
        self.port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n", encoding="utf-8")
        self.log = open(folder / "mosquitto.log", "wb")
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._accepts, 30, f"mosquitto to listen on port {self.port}")

    def _accepts(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"mosquitto exited with {self.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class BytesServer:
    """An HTTP server on a free port that serves ``self.body`` (settable) at every path; counts requests."""

    def __init__(self, body: bytes = b"", content_type: str = "application/x-protobuf"):
        self.body, self.requests = body, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

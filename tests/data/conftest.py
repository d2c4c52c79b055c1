"""Fixtures for the dataset tests: temporary data directories, the shared rendered
dSprites cache, a local HTTP server, and writers of tiny files in official formats."""

from __future__ import annotations

import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from data_file_helpers import sha256, write_jpeg  # noqa: F401  (used by fixtures)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An empty data directory, also set as $DISBENCH_DATA; no disentanglement_lib dir."""
    path = tmp_path / "data"
    monkeypatch.setenv("DISBENCH_DATA", str(path))
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    return path


@pytest.fixture(scope="session")
def procedural_dir() -> Path:
    """The data directory holding the rendered dSprites cache (2.9 GB), shared by all
    test sessions: $DISBENCH_DATA if set, else the repository's .cache/test-data."""
    return Path(os.environ.get("DISBENCH_DATA") or REPO / ".cache" / "test-data")


@pytest.fixture(scope="session")
def derived_dir(tmp_path_factory, procedural_dir) -> Path:
    """A data directory with the shared rendered dSprites (linked) and a stand-in scream.jpg."""
    path = tmp_path_factory.mktemp("derived")
    (path / "dsprites_procedural").symlink_to(procedural_dir / "dsprites_procedural",
                                             target_is_directory=True)
    write_jpeg(path / "scream" / "scream.jpg")
    return path


@pytest.fixture(scope="session")
def xysquares_dir(tmp_path_factory):
    """A data directory with the full XYSquares cache (3.2 GB, ~10 s), removed afterwards."""
    path = tmp_path_factory.mktemp("xysquares")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Server:
    """Files served on 127.0.0.1: `files[name] = body`; `lengths[name]` overrides the
    Content-Length header (a larger one makes a transfer that is cut off)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.lengths: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(server.lengths.get(name, len(body))))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()

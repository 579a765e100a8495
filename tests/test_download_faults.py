"""Fault injection for downloads: a real HTTP server on 127.0.0.1 that misbehaves on purpose.

Every fault (stall after the headers, no answer at all, connection reset, truncated body with
and without Content-Length, wrong bytes, wrong ETag, 404, 500, a server that fails once,
trickling bytes past a deadline) goes through the real :func:`download` (urllib, timeouts,
retries); a real subprocess is killed mid-download; threads download concurrently. Each test
asserts the error type, a message naming the problem, that the cache holds nothing but what
it should (no partial folder, no half file), and that it finished within a bounded number of
requests and seconds. Timeouts are short: ``timeout=`` / ``KE_DOWNLOAD_*`` variables.

``FAULTS`` is the case list; scripts/reliability_table.py turns it into docs/reliability.md's
table.
"""

from __future__ import annotations

import collections
import hashlib
import http.server
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from keras_efficientnet.pretrained import loading
from keras_efficientnet.pretrained.loading import DownloadError, download, read_record

BODY = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY).hexdigest()
TIMEOUT = 0.5  # seconds, connect and read, in every test here
WALL = 8.0  # no test here may take longer than this (all loops are bounded)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: C901 - one branch per fault
        server = self.server
        mode = self.path.strip("/").split("/")[0]
        server.hits[mode] += 1
        body = server.bodies.get(mode, BODY)
        if mode == "flaky" and server.hits[mode] == 1:
            mode = "500"
        if mode in ("404", "500"):
            self.send_error(int(mode))
            return
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "/ok/file.bin")
            self.send_header("X-Linked-Size", str(len(BODY) + 1))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        if mode == "nolength":
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(len(body)))
        if mode == "badetag":
            self.send_header("ETag", '"' + "0" * 64 + '"')
        if mode == "goodetag":
            self.send_header("ETag", f'"{SHA}"')
        self.end_headers()
        if mode == "stall_headers":
            server.release.wait(WALL)
            return
        if mode in ("stall", "truncate", "reset", "nolength"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if mode == "stall":
                server.release.wait(WALL)
            elif mode == "reset":  # RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if mode == "trickle":
            for i in range(0, len(body), 4096):
                if server.release.wait(0.1):
                    return
                self.wfile.write(body[i:i + 4096])
            return
        self.wfile.write(b"X" * len(body) if mode == "wrong" else body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.hits = collections.Counter()
    httpd.bodies = {}
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("KE_DOWNLOAD_BACKOFF", "0.01")
    monkeypatch.setenv("KE_DOWNLOAD_PROGRESS", "0")


def cache_entries(home):
    folder = os.path.join(str(home), "models")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# (mode, expected hash, exception, message, attempts the server must see with retries=1)
FAULTS = [
    ("stall_headers", None, DownloadError, r"sent nothing for 0.5 s .*stalled", 2),
    ("stall", None, DownloadError, r"sent nothing for 0.5 s after 51200 bytes", 2),
    ("reset", None, DownloadError, r"connection broke|truncated", 2),
    ("truncate", None, DownloadError, r"truncated: 51200 of 102400 bytes", 2),
    ("nolength", SHA[:8], ValueError, r"has sha256 [0-9a-f]{64}, but " + SHA[:8], 1),
    ("wrong", MD5, ValueError, r"has md5 [0-9a-f]{32}, but " + MD5 + " was expected", 1),
    ("badetag", None, DownloadError, r"differs from the server's 0{64} \(ETag\)", 2),
    ("redirect", None, DownloadError, r"hub lists 102401 \(X-Linked-Size\)", 2),
    ("404", None, DownloadError, r"HTTP 404", 1),
    ("500", None, DownloadError, r"HTTP 500", 2),
]


@pytest.mark.parametrize("mode,expected,error,message,attempts", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_is_a_clear_error_and_caches_nothing(server, keras_home, mode, expected, error,
                                                   message, attempts):
    start = time.monotonic()
    with pytest.raises(error, match=message) as info:
        download(f"{server.url}/{mode}/file.bin", expected_hash=expected,
                 hash_algorithm="sha256" if expected and len(expected) != 32 else "md5",
                 timeout=TIMEOUT, retries=1)
    assert time.monotonic() - start < WALL
    assert server.hits[mode] == attempts
    if isinstance(info.value, DownloadError):
        assert f"attempt {attempts} of 2" in str(info.value) and "Nothing was cached" in str(info.value)
    assert cache_entries(keras_home) == []  # no file, no record, no .partial-* folder


def test_never_answering_server_times_out(silent_port, keras_home):
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"(no answer within|sent nothing for) 0.5 s"):
        download(f"http://127.0.0.1:{silent_port}/file.bin", timeout=TIMEOUT, retries=1)
    assert time.monotonic() - start < 4 * TIMEOUT + 1
    assert cache_entries(keras_home) == []


def test_refused_connection(keras_home):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(DownloadError, match=r"Could not download .*attempt 2 of 2.*refused"):
        download(f"http://127.0.0.1:{port}/file.bin", timeout=TIMEOUT, retries=1)
    assert cache_entries(keras_home) == []


def test_trickle_past_the_deadline(server, keras_home):
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"not finished after 0.3 s"):
        download(f"{server.url}/trickle/file.bin", timeout=TIMEOUT, retries=0, deadline=0.3)
    assert time.monotonic() - start < 2.0 and server.hits["trickle"] == 1
    assert cache_entries(keras_home) == []


def test_a_failure_then_success_is_retried(server, keras_home, caplog):
    with caplog.at_level(logging.WARNING, "keras_efficientnet"):
        path = download(f"{server.url}/flaky/file.bin", expected_hash=MD5, timeout=TIMEOUT,
                        retries=2)
    assert open(path, "rb").read() == BODY and server.hits["flaky"] == 2
    assert "attempt 1 of 3" in caplog.text and "HTTP 500" in caplog.text
    assert cache_entries(keras_home) == ["file.bin"]


def test_good_etag_and_progress(server, keras_home):
    seen = []
    path = download(f"{server.url}/goodetag/file.bin", timeout=TIMEOUT,
                    progress=lambda done, total: seen.append((done, total)))
    assert open(path, "rb").read() == BODY
    assert seen[-1] == (len(BODY), len(BODY)) and all(t == len(BODY) for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_record_pins_unhashed_files(server, keras_home):
    """No published hash: size and sha256 recorded at first download; a cached file that no
    longer matches is fetched again; a re-download that differs from the record is refused."""
    url = f"{server.url}/ok/model.safetensors"
    path = download(url, timeout=TIMEOUT)
    record = read_record(path)
    assert record["sha256"] == SHA and record["size"] == len(BODY) and record["url"] == url
    with open(path, "r+b") as f:  # damage the cached copy, same size
        f.seek(1000)
        f.write(b"\0\0\0\0")
    assert download(url, timeout=TIMEOUT) == path and server.hits["ok"] == 2
    assert open(path, "rb").read() == BODY


def test_record_refuses_a_changed_upstream_file(server, keras_home, monkeypatch):
    monkeypatch.setenv("KE_CACHE_RECORDS", "sidecar")
    url = f"{server.url}/ok/model.safetensors"
    path = download(url, timeout=TIMEOUT)
    assert cache_entries(keras_home) == ["model.safetensors", "model.safetensors.download.json"]
    os.remove(path)  # the user deletes the file; its record stays
    server.bodies["ok"] = BODY[::-1]
    with pytest.raises(ValueError, match=r"differs from the copy first downloaded .* "
                                         r"Nothing was cached"):
        download(url, timeout=TIMEOUT)
    assert cache_entries(keras_home) == ["model.safetensors.download.json"]


def test_concurrent_downloads_agree(server, keras_home):
    results, errors = [], []

    def worker():
        try:
            results.append(download(f"{server.url}/ok/file.bin", expected_hash=MD5,
                                    timeout=2.0, retries=1))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WALL)
    assert not errors and len(results) == 6 and len(set(results)) == 1
    assert open(results[0], "rb").read() == BODY
    assert cache_entries(keras_home) == ["file.bin"]


_CHILD = """
import sys
from keras_efficientnet.pretrained.loading import download
download(sys.argv[1], timeout=30, retries=0, progress=False)
"""


def test_killed_download_leaves_only_a_partial_that_is_cleaned(server, keras_home):
    """A real child process is killed (SIGKILL) in the middle of a body: no cached file, only
    its .partial-* folder, which the next download removes once it is stale."""
    env = dict(os.environ, KERAS_BACKEND="numpy", KERAS_HOME=str(keras_home))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, f"{server.url}/stall/file.bin"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    models = keras_home / "models"
    deadline = time.monotonic() + 60
    partial = None
    try:
        while time.monotonic() < deadline and child.poll() is None:
            names = [n for n in os.listdir(models)] if models.is_dir() else []
            partial = next((models / n for n in names if n.startswith(".partial-")), None)
            if partial is not None and (partial / "file.bin").exists() \
                    and (partial / "file.bin").stat().st_size > 0:
                break
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert partial is not None and (partial / "file.bin").stat().st_size == len(BODY) // 2
    finally:
        child.kill()
        child.wait(10)
        child.stderr.close()
    assert cache_entries(keras_home) == [partial.name]
    # a recent partial (a download that may still run) is left alone ...
    assert loading.remove_stale_partials(str(models)) == []
    # ... an old one goes, with the next download
    old = time.time() - 7 * 3600
    for p in (partial / "file.bin", partial):
        os.utime(p, (old, old))
    path = download(f"{server.url}/ok/file.bin", expected_hash=MD5, timeout=TIMEOUT)
    assert open(path, "rb").read() == BODY
    assert cache_entries(keras_home) == ["file.bin"]


def test_file_urls_and_missing_file(tmp_path, keras_home):
    src = tmp_path / "w.bin"
    src.write_bytes(BODY)
    assert open(download(f"file://{src}", expected_hash=MD5), "rb").read() == BODY
    with pytest.raises(DownloadError, match=r"no such file"):
        download(f"file://{tmp_path}/nope.bin", retries=3)
    assert cache_entries(keras_home) == ["w.bin"]

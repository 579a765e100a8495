"""Hub-hosted weights through huggingface_hub, against a real HTTP server on 127.0.0.1 that
answers as the Hugging Face hub does (HEAD, then GET of ``/<repo>/resolve/<rev>/<file>``, with
``X-Repo-Commit``, a sha256 ``ETag``/``X-Linked-Etag`` and ``X-Linked-Size``).

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` when it is imported,
so every fetch runs in a fresh Python process with those set, the way a user sets them.

- timm itself fills the Hugging Face cache from the server (``pretrained=True``); ours then
  loads the same weight set with ``HF_HUB_OFFLINE=1`` and the server stopped, from timm's
  file, under timm's name and under the Keras name (``EfficientNetB0``, which must learn the
  file's conventions from its hub repository), and gives timm's logits; ours also fetches a
  file into an empty cache itself.
- Offline with an empty cache, an unreachable endpoint, a repository the hub does not have,
  and bytes that differ from the hub's published sha256 each give a ValueError that says so,
  and leave no file in the cache that a later call would trust.
"""

from __future__ import annotations

import collections
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch  # noqa: F401  (before TensorFlow: torchvision after TF segfaults)

from conftest import BACKEND, quick_on

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "timm/tf_efficientnet_b0.ns_jft_in1k"
SIZE = 64


class Hub(http.server.BaseHTTPRequestHandler):
    """``/<owner>/<name>/resolve/<revision>/<file>`` from ``server.files``; 404 otherwise.
    ``server.corrupt`` makes GET send other bytes than the ones the headers describe."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, send_body):
        server = self.server
        parts = self.path.split("?")[0].strip("/").split("/")
        key = ("/".join(parts[:2]), parts[-1]) if len(parts) >= 5 and parts[2] == "resolve" else None
        server.hits[(self.command, key)] += 1
        body = server.files.get(key)
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        sha = hashlib.sha256(body).hexdigest()
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{sha}"')
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(body)))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(bytes(255 - b for b in body[:64]) + body[64:] if server.corrupt
                             else body)

    def do_HEAD(self):
        self._answer(False)

    def do_GET(self):
        self._answer(True)


@pytest.fixture
def hub():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    httpd.daemon_threads = True
    httpd.hits = collections.Counter()
    httpd.files = {}
    httpd.corrupt = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.stop = lambda: (httpd.shutdown(), httpd.server_close())
    try:
        yield httpd
    finally:
        if httpd.socket.fileno() != -1:
            httpd.stop()


def run_child(code: str, endpoint: str, hf_home, offline: bool = False, backend=BACKEND):
    """Run ``code`` in a new process with the hub settings a user would set; returns
    (returncode, stdout, stderr)."""
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), KERAS_BACKEND=backend,
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HUB_ETAG_TIMEOUT="2", HF_HUB_DOWNLOAD_TIMEOUT="5")
    env.pop("HF_TOKEN", None)
    env.pop("HF_HUB_CACHE", None)
    env["HF_HUB_OFFLINE"] = "1" if offline else "0"
    tests = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(tests), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def cache_files(hf_home):
    root = os.path.join(str(hf_home), "hub")
    found = []
    for folder, _, files in os.walk(root):
        found += [os.path.relpath(os.path.join(folder, f), root) for f in files
                  if not f.endswith(".lock")]
    return sorted(found)


HUB_FILE = """
import json, sys
from keras_efficientnet.pretrained.loading import hub_file
try:
    path = hub_file({repo!r}, "model.safetensors")
    print(json.dumps({{"path": path, "bytes": open(path, "rb").read().hex()[:16]}}))
except ValueError as err:
    print(json.dumps({{"error": str(err)}}))
"""


def hub_file_in_child(hub_url, hf_home, repo=REPO, offline=False):
    rc, out, err = run_child(HUB_FILE.format(repo=repo), hub_url, hf_home, offline=offline)
    assert rc == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def small_file(seed=0) -> bytes:
    from safetensors.numpy import save

    return save({"w": np.random.default_rng(seed).normal(size=(300,)).astype("float32")})


# -- the weight set fetched by timm is reused by ours, offline --------------------------------

TIMM_CHILD = """
import json, numpy as np, torch, timm
model = timm.create_model("tf_efficientnet_b0.ns_jft_in1k", pretrained=True).eval()
x = np.random.default_rng(1).uniform(0, 255, size=(2, {size}, {size}, 3)).astype("float32")
mean = 255 * np.array(model.pretrained_cfg["mean"], "float32")
std = 255 * np.array(model.pretrained_cfg["std"], "float32")
with torch.no_grad():
    y = model(torch.from_numpy(((x - mean) / std).transpose(0, 3, 1, 2).copy())).numpy()
print(json.dumps({{"logits": y.tolist(), "input": x.tolist()}}))
"""

OURS_CHILD = """
import json, numpy as np, torch
import keras_efficientnet as ke
x = np.asarray(json.loads(open({inp!r}).read()), "float32")
timm_named = ke.create_model("tf_efficientnet_b0", weights="ns_jft_in1k",
                             input_shape=({size}, {size}, 3), classifier_activation=None)
keras_named = ke.EfficientNetB0(weights="ns_jft_in1k", input_shape=({size}, {size}, 3),
                                classifier_activation=None)
print(json.dumps({{"logits": [np.asarray(m.predict(x, verbose=0)).tolist()
                              for m in (timm_named, keras_named)]}}))
"""


WRONG_FIT_CHILD = """
import dataclasses
import keras_efficientnet as ke
from keras_efficientnet.pretrained import registry
ws = registry.get_weights("tf_efficientnet_lite0", "in1k")
registry.register_weights(dataclasses.replace(ws, tag="b0_file", hf_hub_id=%r))
try:
    ke.create_model("tf_efficientnet_lite0", weights="b0_file", input_shape=(64, 64, 3))
except ValueError as err:
    print(str(err)[:400])
""" % REPO


@pytest.fixture(scope="module")
def timm_weights():
    """A timm ``tf_efficientnet_b0`` with random weights (BatchNorm statistics included) as
    the hub's model.safetensors."""
    import timm
    from safetensors.torch import save

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_b0", pretrained=False)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                tensor.normal_(0, 0.1)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


@quick_on("torch")
def test_timm_cache_is_reused_offline(hub, timm_weights, tmp_path):
    hub.files[(REPO, "model.safetensors")] = timm_weights
    timm_home = tmp_path / "timm_user_hf"
    rc, out, err = run_child(TIMM_CHILD.format(size=SIZE), hub.url, timm_home)
    assert rc == 0, err[-3000:]
    reference = json.loads(out.strip().splitlines()[-1])
    assert hub.hits[("GET", (REPO, "model.safetensors"))] == 1  # timm fetched it from our hub
    inp = tmp_path / "input.json"
    inp.write_text(json.dumps(reference["input"]))
    expected = np.asarray(reference["logits"])

    hub.stop()  # nothing can be fetched now: ours must take timm's file from the cache
    rc, out, err = run_child(OURS_CHILD.format(size=SIZE, inp=str(inp)), hub.url, timm_home,
                             offline=True)
    assert rc == 0, err[-3000:]
    for ours in json.loads(out.strip().splitlines()[-1])["logits"]:  # timm- and Keras-named
        ours = np.asarray(ours)
        assert ours.shape == expected.shape == (2, 1000)
        assert np.abs(ours - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    # a load that fails (B0 tensors for a Lite0) is an error; timm's file stays in its cache
    rc, out, err = run_child(WRONG_FIT_CHILD, hub.url, timm_home, offline=True)
    assert rc == 0, err[-3000:]
    assert "cannot be loaded" in out and REPO in out, out
    blob = [f for f in cache_files(timm_home) if "/blobs/" in f]
    assert blob == [f"models--timm--tf_efficientnet_b0.ns_jft_in1k/blobs/"
                    f"{hashlib.sha256(timm_weights).hexdigest()}"]


@quick_on("tensorflow")
def test_ours_fetches_into_an_empty_cache_once(hub, tmp_path):
    body = small_file()
    hub.files[(REPO, "model.safetensors")] = body
    got = hub_file_in_child(hub.url, tmp_path / "hf")
    assert "error" not in got, got
    assert got["path"].startswith(str(tmp_path / "hf" / "hub"))
    assert got["bytes"] == body.hex()[:16]
    assert hub.hits[("GET", (REPO, "model.safetensors"))] == 1
    again = hub_file_in_child(hub.url, tmp_path / "hf")  # cached: asked for its etag only
    assert again == got and hub.hits[("GET", (REPO, "model.safetensors"))] == 1


@quick_on("tensorflow")
def test_offline_with_an_empty_cache_says_so(hub, tmp_path):
    hub.files[(REPO, "model.safetensors")] = small_file()
    got = hub_file_in_child(hub.url, tmp_path / "hf", offline=True)
    assert "HF_HUB_OFFLINE is set" in got["error"] and "not in the Hugging Face cache" in got["error"]
    assert sum(hub.hits.values()) == 0 and cache_files(tmp_path / "hf") == []


@quick_on("jax")
def test_unreachable_endpoint_says_so(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: connection refused
    got = hub_file_in_child(f"http://127.0.0.1:{port}", tmp_path / "hf")
    assert f"127.0.0.1:{port} could not be reached" in got["error"], got
    assert "HF_ENDPOINT" in got["error"]
    assert not [f for f in cache_files(tmp_path / "hf") if "/blobs/" in f or "/snapshots/" in f]


@quick_on("jax")
def test_missing_repository_says_so(hub, tmp_path):
    got = hub_file_in_child(hub.url, tmp_path / "hf", repo="timm/no_such_model.in1k")
    assert "timm/no_such_model.in1k" in got["error"] and "not there" in got["error"], got
    assert cache_files(tmp_path / "hf") == []


@quick_on("tensorflow")
def test_bytes_that_differ_from_the_published_sha256_are_removed(hub, tmp_path):
    body = small_file()
    hub.files[(REPO, "model.safetensors")] = body
    hub.corrupt = True
    got = hub_file_in_child(hub.url, tmp_path / "hf")
    assert "corrupted" in got.get("error", ""), got
    assert hashlib.sha256(body).hexdigest() in got["error"]
    assert not [f for f in cache_files(tmp_path / "hf") if "/blobs/" in f or "/snapshots/" in f]
    hub.corrupt = False  # the next try fetches it whole
    got = hub_file_in_child(hub.url, tmp_path / "hf")
    assert got.get("bytes") == body.hex()[:16], got


def test_every_timm_set_is_fetched_from_the_repository_timm_uses():
    """Against timm's own pretrained_cfg: the hub repository and file of each registered set."""
    import timm

    from keras_efficientnet.pretrained import registry

    sets = [ws for ws in registry.list_weights() if ws.format == "timm"]
    assert len(sets) > 80
    for ws in sets:
        cfg = timm.models.get_pretrained_cfg(f"{ws.upstream}.{ws.tag}").to_dict()
        assert ws.hf_hub_id == cfg["hf_hub_id"], ws.key
        assert ws.hf_hub_filename == (cfg.get("hf_hub_filename") or "model.safetensors"), ws.key
        assert registry.pretrained_cfg(ws.variant, ws.tag)["hf_hub_id"] == cfg["hf_hub_id"]

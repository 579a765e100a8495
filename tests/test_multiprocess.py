"""Multi-process data-parallel training (JAX, keras.distribution across processes): real
worker processes on 127.0.0.1 with free ports, bounded waits, every process stopped.

* 2 processes follow the loss trajectory and end at the weights of 1 process with the same
  global batch (float reduction order apart);
* a worker killed (SIGKILL) mid-epoch, then the same command rerun: training resumes from the
  last checkpoint, the step count ends at the planned number and the weights equal those of
  the uninterrupted run (no step redone or skipped);
* a worker that cannot reach the coordinator fails within the bounded time with one line;
* TensorFlow's MultiWorkerMirroredStrategy still fails under Keras 3 (keras issue 20585: the
  test pins the failure so that we notice the fix); the train command says so, as on PyTorch.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from conftest import BACKEND, quick_on

HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = os.path.join(HERE, "multiprocess_helper.py")
TINY = "tiny_b0_for_multiprocess"
# 4 epochs of 1 step: the per-epoch losses are the per-step losses.
ARGS = ["train", "--model", TINY, "--weights", "none", "--epochs", "4", "--steps-per-epoch", "2",
        "--image-size", "32", "--batch-size", "16", "--learning-rate", "0.05", "--dropout", "0",
        "--checkpoint-every", "1", "--quiet"]
jax_only = pytest.mark.skipif(BACKEND != "jax", reason="multi-process training runs on JAX "
                              "(keras.distribution across processes); TensorFlow and PyTorch "
                              "are covered by test_other_backends_refuse")


def _env(**extra):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3",
           "KE_TRAIN_WORKER": f"{sys.executable} {HELPER}", "PYTHONPATH": os.path.dirname(HERE)}
    env.pop("KERAS_DISTRIBUTION_PROCESS_ID", None)
    env.update(extra)
    return env


def _run(args, tmp_path, name, timeout=480, **env):
    """Run the command to completion (bounded); returns (exit status, stderr)."""
    err_path = tmp_path / f"{name}.err"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, HELPER, *args], env=_env(**env),
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            code = proc.wait(timeout=timeout)
        finally:
            _stop(proc)
    return code, err_path.read_text()


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _losses(out):
    with open(os.path.join(out, "log.csv")) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def _weights(out):
    model = keras.saving.load_model(os.path.join(out, "model.keras"), compile=False)
    return [np.asarray(w) for w in model.weights]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, and two uninterrupted processes, of the same run."""
    if BACKEND != "jax":
        pytest.skip("JAX only")
    tmp = tmp_path_factory.mktemp("mp")
    result = {}
    for n in (1, 2):
        out = tmp / f"p{n}"
        code, err = _run([*ARGS, "--num-processes", str(n), "--out", str(out)], tmp, f"p{n}")
        assert code == 0, err[-2000:]
        result[n] = str(out)
    return result


@jax_only
def test_two_processes_match_one(runs):
    one, two = _losses(runs[1]), _losses(runs[2])
    assert len(one) == len(two) == 4
    assert abs(one[0] - one[-1]) > 2e-3  # the loss moves 10x the tolerance below
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-5)
    for a, b in zip(_weights(runs[1]), _weights(runs[2])):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)
    s1, s2 = (json.load(open(os.path.join(r, "summary.json"))) for r in (runs[1], runs[2]))
    assert s1["steps"] == s2["steps"] == 8 and s2["num_processes"] == 2
    assert sorted(os.listdir(runs[2])) == ["checkpoint", "curves.png", "log.csv", "model.keras",
                                           "preset", "summary.json"]


@jax_only
def test_kill_a_worker_and_resume(runs, tmp_path):
    out = tmp_path / "killed"
    args = [*ARGS, "--num-processes", "2", "--out", str(out)]
    err_path = tmp_path / "killed.err"
    state = out / "checkpoint" / "state.json"
    with open(err_path, "w") as err:
        launcher = subprocess.Popen([sys.executable, HELPER, *args],
                                    env=_env(KE_TEST_STEP_SLEEP="1.0"),
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.time() + 180
            saved = None
            while time.time() < deadline and launcher.poll() is None:
                if state.exists():
                    try:
                        saved = json.loads(state.read_text())
                    except ValueError:  # never half-written: replaced atomically
                        raise AssertionError("state.json half-written")
                    if saved["step"] >= 5:  # epoch 2, batch 1: mid-epoch
                        break
                time.sleep(0.1)
            assert saved is not None and saved["step"] >= 5, err_path.read_text()[-2000:]
            pids = dict(re.findall(r"worker (\d) of 2 is pid (\d+)", err_path.read_text()))
            os.kill(int(pids["1"]), signal.SIGKILL)
            code = launcher.wait(timeout=60)  # the launcher stops the other worker
        finally:
            _stop(launcher)
    text = err_path.read_text()
    assert code != 0 and "worker 1 stopped (signal 9)" in text and "resume" in text
    killed_at = json.loads(state.read_text())
    # killed mid-epoch: the last checkpoint is epoch 2 after its first batch
    assert (killed_at["step"], killed_at["epoch"], killed_at["batch"]) == (5, 2, 1)
    assert not (out / "model.keras").exists()
    code, err = _run(args, tmp_path, "resumed")
    assert code == 0, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8  # none redone, none skipped
    assert len(_losses(out)) == 4
    np.testing.assert_allclose(_losses(out)[:killed_at["epoch"]],
                               _losses(runs[2])[:killed_at["epoch"]], rtol=1e-6)
    for a, b in zip(_weights(runs[2]), _weights(out)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


@jax_only
def test_unreachable_coordinator_fails_in_bounded_time(tmp_path):
    from keras_efficientnet.training.multiprocess import free_port
    start = time.time()
    code, err = _run(["train", "--model", TINY, "--weights", "none", "--out", str(tmp_path / "o"),
                      "--coordinator", f"127.0.0.1:{free_port()}", "--process-id", "1",
                      "--num-processes", "2", "--connect-timeout", "3"], tmp_path, "lonely",
                     timeout=90)
    assert code == 2 and time.time() - start < 60
    lines = [l for l in err.splitlines() if "error" in l]
    assert len(lines) == 1 and "could not join the training job within 3 s" in lines[0]
    assert "not reachable" in lines[0] and "Traceback" not in err


def test_bad_cluster_arguments(tmp_path, capsys):
    from keras_efficientnet.cli import main
    from keras_efficientnet.training.multiprocess import Cluster
    with pytest.raises(ValueError, match="--coordinator HOST:PORT"):
        Cluster.resolve(2, None, 1)
    with pytest.raises(ValueError, match="--process-id must lie"):
        Cluster.resolve(2, "h:1", 2)
    with pytest.raises(ValueError, match="divisible"):
        Cluster(2, 0, "h:1").local_batch(15)
    assert main(["train", "--num-processes", "2", "--coordinator", "nonsense", "--process-id",
                 "0", "--out", str(tmp_path / "o")]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


@pytest.mark.skipif(BACKEND == "jax", reason="the refusal concerns TensorFlow and PyTorch")
def test_other_backends_refuse(tmp_path, capsys):
    from keras_efficientnet.cli import main
    assert main(["train", "--num-processes", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "KERAS_BACKEND=jax" in err
    if BACKEND == "tensorflow":
        assert "20585" in err


MWMS = """
import json, os, sys
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": sys.argv[2].split(",")},
                                      "task": {"type": "worker", "index": int(sys.argv[1])}})
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
data = tf.data.Dataset.from_tensor_slices((np.ones((32, 4), "float32"),
                                           np.ones((32, 3), "float32"))).batch(8)
try:
    model.fit(data, epochs=1, verbose=0)
    print("MWMS-OK")
except Exception as err:
    print("MWMS-FAIL", type(err).__name__, " ".join(str(err).split())[:300])
"""


@pytest.mark.skipif(BACKEND != "tensorflow", reason="pins a TensorFlow failure")
def test_tensorflow_multiworker_still_broken(tmp_path):
    """keras-team/keras#20585: Keras 3's fit under MultiWorkerMirroredStrategy fails with
    PerReplica values. When this test fails, the upstream fix has landed: wire
    MultiWorkerMirroredStrategy into training/multiprocess.py."""
    from keras_efficientnet.training.multiprocess import free_port
    script = tmp_path / "mwms.py"
    script.write_text(MWMS)
    workers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, str(script), str(k), workers], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for k in range(2)]
    try:
        outputs = [p.communicate(timeout=150)[0] for p in procs]
    finally:
        for p in procs:
            _stop(p)
    for text in outputs:
        assert "MWMS-OK" not in text, "MultiWorkerMirroredStrategy works now: use it"
        assert "MWMS-FAIL" in text and "PerReplica" in text, text[-1000:]


@pytest.mark.skipif(BACKEND != "torch", reason="pins a PyTorch-backend gap of Keras")
def test_torch_backend_still_has_no_keras_distribution():
    """Keras 3.15 has no distribution backend for PyTorch (``keras.distribution`` is JAX's,
    TensorFlow's ``tf.distribute`` is separate) and its torch trainer never wraps the model in
    ``DistributedDataParallel``, so ``torchrun`` would start N independent trainings. When
    this test fails, Keras has gained one: wire it into training/multiprocess.py."""
    from keras.src.backend import distribution_lib

    assert distribution_lib is None
    with pytest.raises(AttributeError):
        keras.distribution.DataParallel()
    from keras_efficientnet.training.multiprocess import check_backend
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax"):
        check_backend()


@quick_on("tensorflow")  # --num-processes 1 is backend-neutral: sharded batches, checkpoints
def test_one_process_pipeline_on_image_folder(tmp_path):
    """The sharded pipeline reads an image folder (Pillow) and resumes a finished run's
    checkpoint without training again."""
    from PIL import Image

    from keras_efficientnet.cli import main
    from keras_efficientnet.specs import get_spec, register_variant
    register_variant(get_spec("EfficientNetB0").replace(name=TINY, width=0.25, depth=0.1),
                     overwrite=True)
    for cls, value in (("cats", 20), ("dogs", 200)):
        os.makedirs(tmp_path / "data" / cls)
        for i in range(6):
            Image.fromarray(np.full((12, 12, 3), value, "uint8")).save(
                tmp_path / "data" / cls / f"{i}.png")
    out = tmp_path / "run"
    args = ["train", "--model", TINY, "--weights", "none", "--data", str(tmp_path / "data"),
            "--epochs", "2", "--image-size", "32", "--batch-size", "4", "--num-processes", "1",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_images"] == 10 and summary["steps"] == 6  # 3 batches (last padded)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert (state["step"], state["epoch"], state["batch"]) == (6, 2, 0)
    assert main([*args, "--overwrite"]) == 0  # resumes the finished state: no further step
    assert json.loads((out / "summary.json").read_text())["steps"] == 6
    assert len(_losses(out)) == 2

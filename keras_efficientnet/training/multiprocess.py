"""Multi-process data-parallel training: one process per host (or several on one host).

Engines, not a home-made one:

* JAX: ``keras.distribution.initialize`` (``jax.distributed`` with its coordination service;
  CPU collectives over gloo, JAX's default since 0.4.3x, ``jax_cpu_collectives_implementation``)
  and ``keras.distribution.DataParallel`` over the devices of every process. Each process feeds
  its own slice of every global batch (:class:`ShardedBatches`); Keras assembles the global
  batch with ``jax.make_array_from_process_local_data``, so the step is the same as one
  process on the whole batch up to float reduction order.
* TensorFlow: ``tf.distribute.MultiWorkerMirroredStrategy`` does not train Keras 3 models
  (keras-team/keras issue 20585); :func:`initialize` says so and names the JAX route.
* PyTorch: ``torchrun`` + ``DistributedDataParallel`` is outside Keras' trainer; same.

The pieces: :class:`Cluster` (who am I; from arguments or Keras' ``KERAS_DISTRIBUTION_*``
variables), :func:`initialize` (bounded in time: a process that cannot reach the coordinator,
or whose peers never come, exits with a clear message), :class:`ShardedBatches` (each example
once per epoch across processes, the same global batches whatever the number of processes),
:class:`Checkpointer` (periodic checkpoints that process 0 writes atomically and every process
reads; training resumes mid-epoch at the exact step) and :func:`launch_local` (starts N local
workers, stops them all when one fails).

Every process must take part in anything that creates or fetches distributed variables (Keras'
saving creates a throw-away optimizer variable, which under a multi-process distribution is a
collective), so every process *calls* the saving functions; only process 0 writes to the real
paths (:meth:`Cluster.path`), the others to a private temporary folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import keras
import numpy as np

ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
#: keras-team/keras issue about MultiWorkerMirroredStrategy under Keras 3.
TF_ISSUE = "https://github.com/keras-team/keras/issues/20585"


@dataclasses.dataclass
class Cluster:
    """This process' place in a multi-process job.

    Attributes:
        num_processes: processes in the job.
        process_id: this process, ``0 .. num_processes - 1``; 0 is the coordinator and the
            only one that writes files.
        coordinator: ``HOST:PORT`` of process 0's coordination service (``None`` for one
            process).

    Example:
        >>> from keras_efficientnet.training.multiprocess import Cluster
        >>> c = Cluster(2, 1, "127.0.0.1:1234")
        >>> c.is_chief, c.local_batch(64)
        (False, 32)
    """

    num_processes: int = 1
    process_id: int = 0
    coordinator: str | None = None
    scratch: str | None = None

    @property
    def is_chief(self) -> bool:
        return self.process_id == 0

    @classmethod
    def resolve(cls, num_processes=None, coordinator=None, process_id=None) -> "Cluster | None":
        """The cluster from arguments, else Keras' ``KERAS_DISTRIBUTION_*`` variables; ``None``
        when neither asks for more than plain single-process training.

        Raises:
            ValueError: inconsistent or incomplete settings.

        Example:
            >>> from keras_efficientnet.training.multiprocess import Cluster
            >>> Cluster.resolve(2, "10.0.0.1:1234", 1).coordinator
            '10.0.0.1:1234'
            >>> Cluster.resolve() is None
            True
        """
        env = os.environ
        if coordinator is None and env.get(ENV_ADDRESSES):
            coordinator = env[ENV_ADDRESSES].split(",")[0].strip()
        if num_processes is None and env.get(ENV_NUM_PROCESSES):
            num_processes = _int(env[ENV_NUM_PROCESSES], ENV_NUM_PROCESSES)
        if process_id is None and env.get(ENV_PROCESS_ID):
            process_id = _int(env[ENV_PROCESS_ID], ENV_PROCESS_ID)
        if num_processes is None and coordinator is None and process_id is None:
            return None
        if num_processes is None or num_processes < 1:
            raise ValueError(f"--num-processes must be at least 1, got {num_processes}.")
        if num_processes == 1:
            if process_id not in (None, 0):
                raise ValueError(f"--process-id {process_id} with --num-processes 1; it must be 0.")
            return cls(1, 0, coordinator)
        if coordinator is None or process_id is None:
            raise ValueError("A multi-host job needs --coordinator HOST:PORT and --process-id K on "
                             f"every host (or the {ENV_ADDRESSES} and {ENV_PROCESS_ID} variables); "
                             "to start all processes on this machine give --num-processes alone.")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"--process-id must lie in 0..{num_processes - 1}, got {process_id}.")
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--coordinator must be HOST:PORT (process 0's address), got "
                             f"{coordinator!r}.")
        return cls(int(num_processes), int(process_id), coordinator)

    def local_batch(self, global_batch: int) -> int:
        """This process' share of a global batch (which must divide evenly)."""
        if global_batch % self.num_processes:
            raise ValueError(f"The global --batch-size {global_batch} must be divisible by "
                             f"--num-processes {self.num_processes}.")
        return global_batch // self.num_processes

    def path(self, path: str) -> str:
        """``path`` on process 0; a throw-away path in a private folder on the others."""
        if self.is_chief:
            return path
        if self.scratch is None:
            self.scratch = tempfile.mkdtemp(prefix=f"ke-worker{self.process_id}-")
        return os.path.join(self.scratch, os.path.basename(path))

    def cleanup(self) -> None:
        """Remove the private folder of a non-zero process."""
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


#: the module a local worker runs (a name, not an import: training/ never imports commands/).
WORKER_MODULE = "keras_efficientnet.commands.train"


def _int(text, name):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}.") from None


def check_backend() -> None:
    """Raise unless the backend can train with several processes (JAX).

    Raises:
        ValueError: TensorFlow (``MultiWorkerMirroredStrategy`` does not train Keras 3 models:
            keras-team/keras issue 20585) or PyTorch (no torchrun/DDP in Keras' trainer); the
            message names the JAX route.

    Example:
        >>> import keras
        >>> from keras_efficientnet.training.multiprocess import check_backend
        >>> if keras.backend.backend() == "jax":
        ...     check_backend()
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        raise ValueError(
            "Multi-process training on TensorFlow needs tf.distribute.MultiWorkerMirroredStrategy, "
            f"which does not train Keras 3 models (keras-team/keras issue 20585, {TF_ISSUE}); use "
            "KERAS_BACKEND=jax for multi-process training (one host: data_parallel()).")
    if backend != "jax":
        raise ValueError(
            f"Multi-process training is not available on {backend!r}: Keras' trainer has no "
            "torchrun/DistributedDataParallel integration; use KERAS_BACKEND=jax.")


def initialize(cluster: Cluster, timeout: float = 120.0, heartbeat: float = 60.0) -> None:
    """Join the job: ``keras.distribution.initialize`` on JAX, bounded in time.

    JAX ends the process with a fatal error (SIGABRT, no Python exception) when joining
    times out, so the wait is bounded here first: a non-zero process probes the coordinator's
    TCP port until ``timeout`` (a clear ``RuntimeError`` if nobody answers), and a watchdog ends
    the process with a one-line message (exit status 2) when joining has not finished after
    ``timeout`` s; JAX's own ``initialization_timeout`` is set beyond that. Once running, a
    peer without heartbeat for ``heartbeat`` s is declared dead and every process stops
    (Keras' ``initialize`` cannot pass these two settings, so they are bound for the call).

    Raises:
        RuntimeError: the coordinator cannot be reached or the peers never joined.
        ValueError: TensorFlow or PyTorch (see the module docstring), naming the JAX route.

    Example:
        >>> from keras_efficientnet.training.multiprocess import Cluster, initialize
        >>> initialize(Cluster(1, 0))  # one process: nothing to join
    """
    import keras

    if cluster.num_processes == 1:
        return
    check_backend()
    import jax

    where = (f"process {cluster.process_id} of {cluster.num_processes}, coordinator "
             f"{cluster.coordinator}")
    message = (f"could not join the training job within {timeout:g} s ({where}): "
               + ("check that every process was started with the same --coordinator and "
                  "--num-processes" if cluster.is_chief else
                  "the coordinator (process 0) is not reachable at that address, or not all "
                  "processes were started"))

    def give_up():
        sys.stderr.write(f"keras-efficientnet train: error: {message}\n")
        sys.stderr.flush()
        os._exit(2)

    if not cluster.is_chief:
        _probe(cluster.coordinator, timeout, message)
    watchdog = threading.Timer(timeout, give_up)
    watchdog.daemon = True
    original = jax.distributed.initialize

    def bounded(*args, **kwargs):
        kwargs.setdefault("initialization_timeout", int(math.ceil(timeout)) + 60)
        kwargs.setdefault("heartbeat_timeout_seconds", int(math.ceil(heartbeat)))
        return original(*args, **kwargs)

    watchdog.start()
    jax.distributed.initialize = bounded
    try:
        keras.distribution.initialize(cluster.coordinator, cluster.num_processes,
                                      cluster.process_id)
    except Exception as err:  # jax raises XlaRuntimeError / RuntimeError types
        text = " ".join(str(err).split())[:200]
        raise RuntimeError(f"{message} ({type(err).__name__}: {text})") from None
    finally:
        jax.distributed.initialize = original
        watchdog.cancel()
    if jax.process_count() != cluster.num_processes:
        raise RuntimeError(f"JAX sees {jax.process_count()} processes, expected "
                           f"{cluster.num_processes}.")


def _probe(address: str, timeout: float, message: str) -> None:
    """Wait until ``address`` accepts TCP connections, at most ``timeout`` s."""
    host, _, port = address.rpartition(":")
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(5.0, timeout)):
                return
        except OSError as err:
            if time.time() >= deadline:
                raise RuntimeError(f"{message} ({err})") from None
            time.sleep(0.5)


@contextlib.contextmanager
def distribution(cluster: Cluster | None):
    """Keras' ``DataParallel`` over every process' devices while the block runs (nothing for
    one process). ``auto_shard_dataset=False``: :class:`ShardedBatches` already feeds each
    process its slice.

    Example:
        >>> from keras_efficientnet.training.multiprocess import Cluster, distribution
        >>> with distribution(Cluster(1, 0)) as d:
        ...     d is None
        True
    """
    if cluster is None or cluster.num_processes == 1:
        yield None
        return
    import keras

    previous = keras.distribution.distribution()
    dist = keras.distribution.DataParallel(auto_shard_dataset=False)
    keras.distribution.set_distribution(dist)
    try:
        yield dist
    finally:
        keras.distribution.set_distribution(previous)


class ShardedBatches(keras.utils.PyDataset):
    """Batches of one epoch for one process: every process sees its slice of the same global
    batches, so N processes train on exactly what one process does with the same global batch.

    Epoch ``e`` visits the examples in the order ``np.random.default_rng([seed, e])``
    permutes them (no shuffle: in order); each global batch of ``global_batch`` examples is cut
    into ``num_processes`` consecutive slices and process ``k`` gets slice ``k``. The last
    batch is padded with copies of its first example of sample weight 0, so every example is
    seen once per epoch and every batch has the same shape. ``start`` skips the first batches
    of the epoch (resuming mid-epoch); ``limit`` caps the batches per epoch.

    Args:
        load: ``load(indices) -> (x, y)`` numpy arrays for those example indices.
        size: number of examples.
        global_batch: batch size summed over the processes.
        cluster: this process (default: one process).
        epoch, seed, shuffle, start, limit: see above.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.training.multiprocess import Cluster, ShardedBatches
        >>> x, y = np.arange(10.0)[:, None], np.arange(10)
        >>> parts = [ShardedBatches.from_arrays(x, y, 4, Cluster(2, k, "h:1"), shuffle=False)
        ...          for k in (0, 1)]
        >>> len(parts[0]), parts[0][0][1].tolist(), parts[1][0][1].tolist()
        (3, [0, 1], [2, 3])
        >>> parts[1][2]  # the padded last batch: examples 8, 9 and two zero-weight copies
        (array([[8.],
               [8.]]), array([8, 8]), array([0., 0.], dtype=float32))
    """

    def __init__(self, load, size, global_batch, cluster=None, epoch=0, seed=0, shuffle=True,
                 start=0, limit=None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.cluster = cluster or Cluster(1, 0)
        self.local = self.cluster.local_batch(int(global_batch))
        self.load, self.size, self.global_batch = load, int(size), int(global_batch)
        self.batches = -(-self.size // self.global_batch)
        if limit:
            self.batches = min(self.batches, int(limit))
        self.start = int(start)
        if not 0 <= self.start < self.batches:
            raise ValueError(f"start={start} outside the epoch's {self.batches} batches.")
        order = np.arange(self.size)
        if shuffle:
            order = np.random.default_rng([int(seed), int(epoch)]).permutation(self.size)
        self.order = order

    def __len__(self):
        return self.batches - self.start

    def __getitem__(self, i):
        b = self.start + int(i)
        if not 0 <= b < self.batches:
            raise IndexError(i)
        idx = self.order[b * self.global_batch:(b + 1) * self.global_batch]
        weight = np.ones(self.global_batch, "float32")
        if len(idx) < self.global_batch:
            weight[len(idx):] = 0.0
            idx = np.concatenate([idx, np.full(self.global_batch - len(idx), idx[0])])
        k = self.cluster.process_id
        mine = slice(k * self.local, (k + 1) * self.local)
        x, y = self.load(idx[mine])
        return x, y, weight[mine]

    @staticmethod
    def from_arrays(x, y, global_batch, cluster=None, **kwargs):
        """Batches of in-memory arrays ``x``, ``y``."""
        return ShardedBatches(lambda idx: (x[idx], y[idx]), len(y), global_batch, cluster,
                              **kwargs)


def image_loader(paths, labels, image_size: int):
    """``load(indices)`` reading ``paths`` as RGB images resized (bilinear) to ``image_size``,
    values 0-255, with integer ``labels``; for :class:`ShardedBatches`.

    Example:
        >>> import os, tempfile, numpy as np
        >>> from PIL import Image
        >>> from keras_efficientnet.training.multiprocess import image_loader
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(p)
        >>> x, y = image_loader([p], [1], 16)([0])
        >>> x.shape, y.tolist()
        ((1, 16, 16, 3), [1])
    """
    from PIL import Image

    paths, labels = list(paths), np.asarray(labels, "int32")

    def load(indices):
        images = []
        for i in indices:
            with Image.open(paths[int(i)]) as img:
                img = img.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(img, "float32"))
        return np.stack(images), labels[np.asarray(indices, int)]

    return load


class Checkpointer:
    """Training state in ``directory``: ``state.json`` (step, epoch, batch within the epoch,
    history, settings) pointing at ``step-<N>.weights.h5`` (model and optimizer variables, Keras'
    ``save_weights``). Process 0 writes the weights under their final name and then replaces
    ``state.json`` atomically, so a process killed at any moment leaves the previous complete
    checkpoint; the two newest weight files are kept. Every process reads.

    Args:
        directory: the checkpoint folder (shared by the processes).
        cluster: this process.
        settings: what must match to resume (model, data, batch, schedule...).

    Example:
        >>> import tempfile
        >>> from keras_efficientnet.training.multiprocess import Checkpointer, Cluster
        >>> Checkpointer(tempfile.mkdtemp(), Cluster(), {"model": "B0"}).load_state() is None
        True
    """

    def __init__(self, directory: str, cluster: Cluster | None = None, settings: dict | None = None):
        self.directory = os.path.abspath(directory)
        self.cluster = cluster or Cluster()
        self.settings = json.loads(json.dumps(settings or {}))
        self.state_path = os.path.join(self.directory, "state.json")

    def load_state(self) -> dict | None:
        """The last complete state, or ``None``.

        Raises:
            ValueError: a checkpoint of different settings, or an unreadable state file.
        """
        if not os.path.exists(self.state_path):
            return None
        try:
            with open(self.state_path) as f:
                state = json.load(f)
        except (OSError, ValueError) as err:
            raise ValueError(f"Checkpoint {self.state_path!r} cannot be read ({err}); delete "
                             f"{self.directory!r} to start afresh.") from None
        if state.get("settings") != self.settings:
            diff = sorted(k for k in set(state.get("settings", {})) | set(self.settings)
                          if state.get("settings", {}).get(k) != self.settings.get(k))
            raise ValueError(f"The checkpoint in {self.directory!r} is of a run with other settings "
                             f"({', '.join(diff)}); use another --out, or delete it to start "
                             "afresh.")
        return state

    def restore(self, model) -> dict | None:
        """Load the last checkpoint into ``model`` (every process) and return its state."""
        state = self.load_state()
        if state is None:
            return None
        model.load_weights(os.path.join(self.directory, state["weights"]))
        return state

    def save(self, model, step: int, epoch: int, batch: int, history: dict) -> None:
        """Write a checkpoint (call on every process: saving is collective under JAX)."""
        name = f"step-{int(step)}.weights.h5"
        final = os.path.join(self.directory, name)
        if self.cluster.is_chief:
            os.makedirs(self.directory, exist_ok=True)
        target = self.cluster.path(final)
        model.save_weights(target, overwrite=True)
        if not self.cluster.is_chief:
            os.remove(target)
            return
        state = {"step": int(step), "epoch": int(epoch), "batch": int(batch), "weights": name,
                 "history": history, "settings": self.settings, "time": time.time()}
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)
        kept = sorted((f for f in os.listdir(self.directory)
                       if f.startswith("step-") and f.endswith(".weights.h5")),
                      key=lambda f: int(f[5:-11]))
        for old in kept[:-2]:
            if old != name:
                os.remove(os.path.join(self.directory, old))


def _callback(checkpointer, every, state):
    import keras

    class Periodic(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            state["batch"] += 1
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            if every and step % every == 0:
                checkpointer.save(self.model, step, state["epoch"], state["batch"],
                                  state["history"])

    return Periodic()


def fit_resumable(trainer, make_batches, epochs: int, checkpointer: Checkpointer,
                  checkpoint_every: int | None = None, validation=None, callbacks=(),
                  verbose=1, on_epoch=None) -> dict:
    """Train ``epochs`` epochs, resuming from ``checkpointer``'s last state; returns the history.

    One ``fit`` per epoch (the first after a restart starts at the saved batch), a checkpoint
    every ``checkpoint_every`` optimizer steps and at every epoch end. The optimizer's
    ``iterations`` (and so the learning-rate schedule) continue from the checkpoint. The
    history of an epoch resumed mid-way averages the steps after the restart.

    Args:
        trainer: a compiled model.
        make_batches: ``make_batches(epoch, start) -> ShardedBatches``.
        epochs: total epochs.
        checkpointer: where the state lives.
        checkpoint_every: steps between checkpoints (``None``: epoch ends only).
        validation: a ``ShardedBatches`` of the validation data, or ``None``.
        callbacks: more Keras callbacks for every ``fit``.
        on_epoch: ``on_epoch(epoch, logs)`` after each finished epoch (process 0 writes logs).

    Example:
        >>> import tempfile, keras, numpy as np
        >>> from keras_efficientnet.training.multiprocess import (Checkpointer, ShardedBatches,
        ...                                                       fit_resumable)
        >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> m.compile("sgd", "mse")
        >>> x, y = np.ones((8, 2), "float32"), np.ones((8, 1), "float32")
        >>> h = fit_resumable(m, lambda e, s: ShardedBatches.from_arrays(x, y, 4, epoch=e, start=s),
        ...                   2, Checkpointer(tempfile.mkdtemp()), verbose=0)
        >>> len(h["loss"]), int(m.optimizer.iterations)
        (2, 4)
    """
    if not trainer.optimizer.built:
        trainer.optimizer.build(trainer.trainable_variables)
    state = checkpointer.restore(trainer)
    if state is None:
        state = {"epoch": 0, "batch": 0, "history": {}}
    run = {"epoch": state["epoch"], "batch": state["batch"], "history": state["history"]}
    periodic = _callback(checkpointer, checkpoint_every, run)
    while run["epoch"] < epochs:
        epoch = run["epoch"]
        data = make_batches(epoch, run["batch"])
        h = trainer.fit(data, validation_data=validation, initial_epoch=epoch, epochs=epoch + 1,
                        verbose=verbose, callbacks=[periodic, *callbacks])
        logs = {k: float(v[-1]) for k, v in h.history.items()}
        for k, v in logs.items():
            run["history"].setdefault(k, []).append(v)
        run["epoch"], run["batch"] = epoch + 1, 0
        step = int(np.asarray(trainer.optimizer.iterations))
        checkpointer.save(trainer, step, run["epoch"], 0, run["history"])
        if on_epoch is not None:
            on_epoch(epoch, logs)
    return run["history"]


def array_loader(x, y):
    """``load(indices) -> (x[indices], y[indices])`` for :class:`ShardedBatches`.

    Example:
        >>> import numpy as np
        >>> from keras_efficientnet.training.multiprocess import array_loader
        >>> array_loader(np.arange(5), np.arange(5) * 2)([1, 3])[1].tolist()
        [2, 6]
    """
    return lambda idx: (x[np.asarray(idx, int)], y[np.asarray(idx, int)])


def folder_loader(dataset, data_dir, class_names, image_size: int):
    """``(load, count)`` for the files of a dataset made by ``image_dataset_from_directory``
    (its ``file_paths``, labelled by their class folder under ``data_dir``).

    Example:
        >>> import os, tempfile, numpy as np
        >>> from PIL import Image
        >>> from keras_efficientnet.training.data import image_folder
        >>> from keras_efficientnet.training.multiprocess import folder_loader
        >>> root = tempfile.mkdtemp()
        >>> for c in ("a", "b"):
        ...     os.makedirs(os.path.join(root, c))
        ...     for i in range(3):
        ...         Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(os.path.join(root, c, f"{i}.png"))
        >>> train, val, names = image_folder(root, 16, batch_size=2, validation_split=0.5)
        >>> load, n = folder_loader(train, root, names, 16)
        >>> n, load([0])[0].shape
        (3, (1, 16, 16, 3))
    """
    paths = list(dataset.file_paths)
    root = os.path.abspath(os.fspath(data_dir))
    labels = [class_names.index(os.path.relpath(os.path.abspath(p), root).split(os.sep)[0])
              for p in paths]
    return image_loader(paths, labels, image_size), len(paths)


def write_csv(history: dict, path: str) -> None:
    """Write a history dict as Keras' ``CSVLogger`` does (``epoch`` then sorted keys).

    Example:
        >>> import os, tempfile
        >>> from keras_efficientnet.training.multiprocess import write_csv
        >>> p = os.path.join(tempfile.mkdtemp(), "log.csv")
        >>> write_csv({"loss": [2.0, 1.0]}, p)
        >>> open(p).read().split()
        ['epoch,loss', '0,2.0', '1,1.0']
    """
    import csv

    keys = sorted(history)
    rows = len(history[keys[0]]) if keys else 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *keys])
        for i in range(rows):
            writer.writerow([i, *(history[k][i] for k in keys)])


def train_job(trainer, cluster, load, n_train, val_load, n_val, batch_size, epochs, steps, seed,
              checkpoint_dir, checkpoint_every=None, settings=None, verbose=1) -> dict:
    """The training loop of ``keras-efficientnet train`` in multi-process mode: sharded,
    seeded batches (:class:`ShardedBatches`), resumable (:func:`fit_resumable`); returns the
    history."""
    checkpointer = Checkpointer(checkpoint_dir, cluster, settings)
    validation = ShardedBatches(val_load, n_val, batch_size, cluster, shuffle=False)

    def batches(epoch, start):
        return ShardedBatches(load, n_train, batch_size, cluster, epoch=epoch, seed=seed,
                              start=start, limit=steps)

    return fit_resumable(trainer, batches, epochs, checkpointer, checkpoint_every,
                         validation=validation, verbose=verbose)


def wants_launcher(num_processes, coordinator=None, process_id=None) -> bool:
    """Whether ``train --num-processes N`` should start N local workers: N > 1 and this
    process is not already one process of a job (no ``--coordinator``/``--process-id`` and no
    ``KERAS_DISTRIBUTION_PROCESS_ID``).

    Example:
        >>> from keras_efficientnet.training.multiprocess import wants_launcher
        >>> wants_launcher(2), wants_launcher(2, "h:1", 0), wants_launcher(1)
        (True, False, False)
    """
    return bool(num_processes and num_processes > 1 and coordinator is None
                and process_id is None and not os.environ.get(ENV_PROCESS_ID))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now.

    Example:
        >>> from keras_efficientnet.training.multiprocess import free_port
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop(processes, grace: float = 10.0) -> None:
    """Terminate ``processes`` (``subprocess.Popen``), then kill those left after ``grace`` s.

    Example:
        >>> import subprocess, sys
        >>> from keras_efficientnet.training.multiprocess import stop
        >>> p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        >>> stop([p], grace=5)
        >>> p.poll() is not None
        True
    """
    for p in processes:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.terminate()
    deadline = time.time() + grace
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                p.kill()
            p.wait(timeout=30)


def launch_local(train_kwargs: dict, num_processes: int, host: str = "127.0.0.1",
                 port: int | None = None, env: dict | None = None, poll: float = 0.2) -> int:
    """Run ``train(**train_kwargs)`` in ``num_processes`` local worker processes.

    Each worker gets Keras' ``KERAS_DISTRIBUTION_*`` variables (coordinator ``host:port``,
    a free port by default). When a worker fails, the others are stopped (terminate, then kill
    after 10 s) and the exit status is that worker's; rerun the same command to resume from the
    last checkpoint. Every started process is stopped before this returns, also on Ctrl-C.

    A worker is ``python -m keras_efficientnet.commands.train`` (``WORKER_MODULE``); the
    ``KE_TRAIN_WORKER`` variable (a command line) replaces it, e.g. by a script of yours that
    registers custom variants (``register_variant``) and then calls
    ``keras_efficientnet.commands.train.worker_main()``.

    Returns:
        0 when every worker succeeded, else the first failure's exit status (2 for a signal).

    Example:
        >>> from keras_efficientnet.training.multiprocess import launch_local
        >>> launch_local({}, 0)
        Traceback (most recent call last):
        ...
        ValueError: --num-processes must be at least 1, got 0.
    """
    if num_processes < 1:
        raise ValueError(f"--num-processes must be at least 1, got {num_processes}.")
    port = port or free_port(host)
    payload = json.dumps(train_kwargs)
    import shlex

    command = (shlex.split(os.environ["KE_TRAIN_WORKER"]) if os.environ.get("KE_TRAIN_WORKER")
               else [sys.executable, "-m", WORKER_MODULE])
    procs = []
    try:
        for k in range(num_processes):
            worker_env = {**os.environ, **(env or {}), ENV_ADDRESSES: f"{host}:{port}",
                          ENV_NUM_PROCESSES: str(num_processes), ENV_PROCESS_ID: str(k),
                          "KE_TRAIN_KWARGS": payload}
            procs.append(subprocess.Popen(command, env=worker_env))
            print(f"keras-efficientnet train: worker {k} of {num_processes} is pid "
                  f"{procs[-1].pid}", file=sys.stderr, flush=True)
        while True:
            codes = [p.poll() for p in procs]
            failed = [(k, c) for k, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                k, code = failed[0]
                why = f"signal {-code}" if code < 0 else f"exit status {code}"
                print(f"keras-efficientnet train: worker {k} stopped ({why}); stopping the others. "
                      "Rerun the same command to resume from the last checkpoint.",
                      file=sys.stderr, flush=True)
                return code if code > 0 else 2
            if all(c == 0 for c in codes):
                return 0
            time.sleep(poll)
    finally:
        stop(procs)

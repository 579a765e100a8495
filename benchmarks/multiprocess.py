"""Benchmark (not a test): training throughput of 1 vs N JAX processes on this machine.

Each process runs Keras' ``DataParallel`` across processes (keras_efficientnet.training.
multiprocess: ``initialize``, ``distribution``, ``ShardedBatches``) on the same global batch;
the timed steps follow warm-up steps (compilation excluded). Images/s are global images per
second; efficiency = throughput(N) / (N * throughput(1)).

Usage (from the repository root):
    KERAS_BACKEND=jax PYTHONPATH=$PWD python benchmarks/multiprocess.py \
        --model EfficientNetB0 --image-size 64 --batch-size 32 --steps 10 --processes 1 2

Results go to benchmarks/results/runs/multiprocess_<host>.json. On a machine with fewer cores
than processes x threads the processes compete for the same cores: the figure then measures
the overhead of the collectives, not the scaling of a cluster.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
    sys.path.insert(0, ROOT)
    import keras
    import numpy as np

    from keras_efficientnet.models.factory import build_efficientnet
    from keras_efficientnet.specs import get_spec
    from keras_efficientnet.training import multiprocess as mp

    cluster = mp.Cluster.resolve() or mp.Cluster()
    mp.initialize(cluster, timeout=300)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = args.batch_size * (args.warmup + args.steps)
    x = rng.uniform(0, 255, (n, args.image_size, args.image_size, 3)).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    with mp.distribution(cluster):
        model = build_efficientnet(get_spec(args.model), include_top=True, weights=None,
                                   classes=10, input_shape=(args.image_size, args.image_size, 3))
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy")
        times = []

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                float(logs["loss"])  # wait for the step
                times.append(time.perf_counter())

        data = mp.ShardedBatches.from_arrays(x, y, args.batch_size, cluster, shuffle=False)
        model.fit(data, epochs=1, verbose=0, callbacks=[Clock()])
    timed = times[args.warmup - 1:]
    seconds = timed[-1] - timed[0]
    if cluster.is_chief:
        print(json.dumps({"processes": cluster.num_processes, "steps": len(timed) - 1,
                          "seconds": seconds,
                          "images_per_s": args.batch_size * (len(timed) - 1) / seconds}),
              flush=True)


def run(args, processes):
    sys.path.insert(0, ROOT)
    from keras_efficientnet.training.multiprocess import ENV_ADDRESSES, ENV_NUM_PROCESSES, \
        ENV_PROCESS_ID, free_port, stop

    port = free_port()
    procs = []
    try:
        for k in range(processes):
            env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "jax",
                   ENV_ADDRESSES: f"127.0.0.1:{port}", ENV_NUM_PROCESSES: str(processes),
                   ENV_PROCESS_ID: str(k)}
            if processes == 1:
                env = {k_: v for k_, v in env.items() if not k_.startswith("KERAS_DISTRIBUTION")}
            procs.append(subprocess.Popen([sys.executable, __file__, "--worker", *sys.argv[1:]],
                                          env=env, stdout=subprocess.PIPE, text=True))
        outputs = [p.communicate(timeout=args.timeout)[0] for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    finally:
        stop(procs)
    return json.loads([l for l in outputs[0].splitlines() if l.startswith("{")][-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="EfficientNetB0")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32, help="global batch")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "runs",
                                                 f"multiprocess_{platform.node() or 'host'}.json"))
    args = p.parse_args()
    if args.worker:
        return worker(args)
    results = [run(args, n) for n in args.processes]
    base = results[0]["images_per_s"] / results[0]["processes"]
    for r in results:
        r["efficiency"] = r["images_per_s"] / (r["processes"] * base)
        print(f"{r['processes']} process(es): {r['images_per_s']:.1f} images/s, "
              f"efficiency {r['efficiency']:.2f}")
    import jax
    import keras
    record = {"benchmark": "multiprocess data-parallel training (JAX, CPU, 127.0.0.1)",
              "model": args.model, "image_size": args.image_size,
              "global_batch": args.batch_size, "warmup_steps": args.warmup,
              "timed_steps": args.steps, "cpu_count": os.cpu_count(),
              "keras": keras.__version__, "jax": jax.__version__,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "note": "shared 2-core machine (other jobs running): the 2 processes compete for "
                      "the same 2 cores, so this measures the collectives' overhead, not the "
                      "scaling of a cluster", "results": results}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

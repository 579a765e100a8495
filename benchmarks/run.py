"""Side-by-side speed of keras_efficientnet against keras.applications (and timm, exports).

One command measures, per backend in its own subprocess, our model and keras.applications'
on the same variant, batch and resolution:

* inference throughput at batch 1 and batch N (``model.predict_on_batch``),
* the training step at batch M (``model.train_on_batch``, SGD, sparse cross-entropy),
* first-call latency (build + trace/compile + first ``predict_on_batch``) and peak memory
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of a fresh subprocess that builds one model
  and predicts one batch of N),
* on PyTorch also timm's model (eval / train), and exported ONNX (onnxruntime) and TFLite
  models of ours where ``keras_efficientnet.export`` can make them.

Timings are interleaved in one process (ours, reference, ours, reference, ..., alternating
which goes first) so a busy machine slows both alike; each figure is the median and the min
of the repeats after warm-up. Ratios are reference time / our time (> 1: ours is faster).

Usage::

    python benchmarks/run.py                       # B0 and V2-S, all backends, 224 px
    python benchmarks/run.py --quick               # smaller, fewer repeats
    python benchmarks/run.py --variants EfficientNetB0 --backends jax --resolution 160

Writes ``benchmarks/results/latest.{md,json,png}`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = ("tensorflow", "jax", "torch")
TIMM_NAMES = {"EfficientNetB0": "efficientnet_b0", "EfficientNetB1": "efficientnet_b1",
              "EfficientNetB2": "efficientnet_b2", "EfficientNetB3": "efficientnet_b3",
              "EfficientNetV2S": "tf_efficientnetv2_s", "EfficientNetV2M": "tf_efficientnetv2_m",
              "EfficientNetV2B0": "tf_efficientnetv2_b0"}


# --------------------------------------------------------------------------- models

def _env(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def build(which, variant, resolution, depthwise_impl=None, data_format=None, bn_fold=None):
    """Build ``which`` ("ours", "ka") for ``variant`` at ``resolution``, random weights;
    ``data_format="channels_first"`` builds ours with NCHW inputs and activations;
    ``depthwise_impl`` forces the depthwise layer class; ``bn_fold`` builds the composite
    layout (``layout="blocks"``) with that folding setting."""
    import keras

    shape = (resolution, resolution, 3)
    if which == "ka":
        return getattr(keras.applications, variant)(weights=None, input_shape=shape)
    import keras_efficientnet as ke

    if data_format == "channels_first":
        return getattr(ke, variant)(weights=None, input_shape=(3, resolution, resolution),
                                    data_format=data_format)
    kwargs = {}
    if depthwise_impl not in (None, "auto"):
        kwargs["depthwise_impl"] = depthwise_impl
    if bn_fold not in (None, "auto"):  # folding inside composite blocks
        kwargs.update(bn_fold=bn_fold, layout="blocks")
    model = getattr(ke, variant)(weights=None, input_shape=shape, **kwargs)
    return model


def _compile(model):
    import keras

    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy")


def _sync(out):
    import keras

    return keras.ops.convert_to_numpy(out)


# --------------------------------------------------------------------------- timing

def interleaved(fns, warmup, repeats):
    """Time each of ``fns`` {name: fn} alternately; returns {name: [seconds, ...]}."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _stats(seconds, batch):
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "batch": batch,
            "median_ips": batch / statistics.median(seconds), "max_ips": batch / min(seconds),
            "n": len(seconds)}


def _log(*args):
    print(*args, file=sys.stderr, flush=True)


def worker(args):
    """Warm measurements of every model on one backend; prints one JSON line."""
    import numpy as np

    import keras

    backend = keras.backend.backend()
    results = []
    rng = np.random.default_rng(0)
    for variant in args.variants:
        res = args.resolution
        names = {"ours": ("ours", None, None, None), "ka": ("ka", None, None, None)}
        if variant in args.impl_variants:
            for impl in args.depthwise_impls:
                names[f"ours[{impl}]"] = ("ours", impl, None, None)
            for fmt in args.data_formats:
                names[f"ours[{fmt}]"] = ("ours", None, fmt, None)
        if variant in args.fold_variants:
            for fold in args.bn_folds:
                names[f"ours[bn_fold={fold}]"] = ("ours", None, None, fold)
        def feed(name, x):
            """NCHW inputs for the channels_first model (the layout change is the input's)."""
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if "channels_first" in name else x

        models = {}
        for name, (which, impl, fmt, fold) in names.items():
            _log(f"[{backend}] building {name} {variant} @{res}")
            try:
                models[name] = build(which, variant, res, impl, fmt, fold)
                if fmt is not None:  # e.g. TensorFlow's CPU kernels have no NCHW convolution
                    probe = np.zeros((1, res, res, 3), "float32")
                    _sync(models[name].predict_on_batch(feed(name, probe)))
            except Exception as err:  # a layout a backend cannot run is reported, not fatal
                if fmt is None:
                    raise
                models.pop(name, None)
                lines = [line for line in str(err).splitlines() if "support" in line]
                _log(f"[{backend}] {name} unavailable: {(lines or [repr(err)])[0][:200]}")
        if args.fold:
            try:
                from keras_efficientnet.models.fuse import fuse_batchnorm
                models["ours+fold"] = fuse_batchnorm(models["ours"])
            except Exception as err:  # optional: issue 5's folding may not be there
                _log(f"[{backend}] BN folding unavailable: {err!r}")
        traced = {}
        if backend == "torch" and not args.no_torchscript:
            # ke.torchscript: the same computation, traced and frozen (no Keras per-layer overhead)
            try:
                import keras_efficientnet as ke
                traced["ours[torchscript]"] = ke.torchscript(models["ours"])
                first = build("ours", variant, res, None, "channels_first", None)
                first.set_weights(models["ours"].get_weights())
                traced["ours[channels_first+torchscript]"] = ke.torchscript(first)
                del first
            except Exception as err:
                _log(f"[torch] torchscript unavailable: {err!r}")
        timm_model = None
        if backend == "torch" and variant in TIMM_NAMES and not args.no_timm:
            try:
                import timm
                import torch
                timm_model = timm.create_model(TIMM_NAMES[variant], pretrained=False)
                # timm's faster CPU layout for inference, timed beside its default NCHW
                timm_cl = copy.deepcopy(timm_model).eval().to(memory_format=torch.channels_last)
            except Exception as err:
                _log(f"[torch] timm unavailable: {err!r}")

        for batch in args.batches:
            x = rng.uniform(0, 255, (batch, res, res, 3)).astype("float32")
            fns = {name: (lambda m=m, xx=feed(name, x): _sync(m.predict_on_batch(xx)))
                   for name, m in models.items()}
            for name, m in traced.items():
                fns[name] = (lambda m=m, xx=feed(name, x): m(xx).numpy())
            if timm_model is not None:
                import torch
                timm_model.eval()
                xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

                def timm_fn():
                    with torch.no_grad():
                        return timm_model(xt).numpy()
                fns["timm"] = timm_fn
                xcl = xt.contiguous(memory_format=torch.channels_last)

                def timm_cl_fn():
                    with torch.no_grad():
                        return timm_cl(xcl).numpy()
                fns["timm[channels_last]"] = timm_cl_fn
            _log(f"[{backend}] {variant} inference batch {batch}")
            times = interleaved(fns, args.warmup, args.repeats)
            for name, seconds in times.items():
                results.append({"backend": backend, "variant": variant, "model": name,
                                "metric": f"infer_b{batch}", **_stats(seconds, batch)})

        if args.exports and timm_model is not None:
            results.extend(_timm_export_timings(timm_model, variant, args, rng))
        if variant not in args.train_variants:
            if args.exports and backend == "tensorflow":
                results.extend(_export_timings(models["ours"], variant, args, rng))
            del models, timm_model, traced
            continue
        batch = args.train_batch
        x = rng.uniform(0, 255, (batch, res, res, 3)).astype("float32")
        y = rng.integers(0, 1000, (batch,))
        fns = {}
        for name, m in models.items():
            if name == "ours+fold" or "bn_fold=" in name:  # inference-only differences
                continue
            _compile(m)
            fns[name] = (lambda m=m, xx=feed(name, x): float(m.train_on_batch(xx, y)))
        if timm_model is not None:
            import torch
            timm_model.train()
            opt = torch.optim.SGD(timm_model.parameters(), lr=0.01, momentum=0.9)
            xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            yt = torch.from_numpy(y)

            def timm_train():
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(timm_model(xt), yt)
                loss.backward()
                opt.step()
                return float(loss)
            fns["timm"] = timm_train
        _log(f"[{backend}] {variant} train step batch {batch}")
        times = interleaved(fns, args.warmup, args.repeats)
        for name, seconds in times.items():
            results.append({"backend": backend, "variant": variant, "model": name,
                            "metric": f"train_b{batch}", **_stats(seconds, batch)})

        if args.exports and backend == "tensorflow":
            results.extend(_export_timings(models["ours"], variant, args, rng))
        del models, timm_model, traced
    print("RESULT " + json.dumps(results), flush=True)


def _runtime_fn(fmt, path, x):
    """A zero-argument call running the artifact at ``path`` on ``x`` in its runtime:
    onnxruntime (``onnx``), LiteRT/TFLite with XNNPACK (``tflite``), OpenVINO on CPU in float32
    (``openvino``: an ``.xml`` IR or an ``.onnx`` file, which OpenVINO reads directly)."""
    if fmt == "onnx":
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        return lambda s=sess, f=feed: s.run(None, f)
    if fmt == "openvino":
        import openvino as ov
        compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        return lambda r=request, xx=x: r.infer({0: xx})
    from keras_efficientnet.export import _tflite_interpreter
    interp = _tflite_interpreter(path)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    out_index = interp.get_output_details()[0]["index"]

    def fn(i=interp, xx=x):
        i.set_tensor(index, xx)
        i.invoke()
        return i.get_tensor(out_index)
    return fn


def _time_artifacts(artifacts, backend, variant, args, rng, layout="nhwc"):
    """Median timings of ``{row name: (format, path)}`` per inference batch, interleaved."""
    out = []
    for batch in args.batches:
        x = rng.uniform(0, 255, (batch, args.resolution, args.resolution, 3)).astype("float32")
        if layout == "nchw":
            x = x.transpose(0, 3, 1, 2).copy()
        fns = {}
        for name, (fmt, path) in artifacts.items():
            try:
                fns[name] = _runtime_fn(fmt, path, x)
            except Exception as err:
                _log(f"{name} unavailable: {err!r}")
        if not fns:
            continue
        times = interleaved(fns, args.warmup, args.repeats)
        for name, seconds in times.items():
            out.append({"backend": backend, "variant": variant, "model": name,
                        "metric": f"infer_b{batch}", **_stats(seconds, batch)})
    return out


def _export_timings(model, variant, args, rng):
    """ONNX (onnxruntime), TFLite and OpenVINO timings of our exported model, where export works."""
    try:
        from keras_efficientnet.export import EXTENSIONS, export
    except Exception as err:
        _log(f"export unavailable: {err!r}")
        return []
    work = tempfile.mkdtemp(prefix="ke_bench_")
    artifacts = {}
    for fmt in ("onnx", "tflite", "openvino"):
        path = os.path.join(work, "model" + EXTENSIONS[fmt])
        try:
            export(model, path, format=fmt, verify=False)
            artifacts[f"ours-{fmt}"] = (fmt, path)
        except Exception as err:
            _log(f"{fmt} export failed: {err!r}")
    return _time_artifacts(artifacts, "tensorflow", variant, args, rng)


def _timm_export_timings(timm_model, variant, args, rng):
    """timm's own ONNX export (torch.onnx, TorchScript exporter, dynamic batch) in onnxruntime
    and in OpenVINO: the runtimes a PyTorch user would deploy timm's model with."""
    import torch

    path = os.path.join(tempfile.mkdtemp(prefix="ke_bench_timm_"), "timm.onnx")
    try:
        x = torch.zeros(1, 3, args.resolution, args.resolution)
        with torch.no_grad():
            torch.onnx.export(timm_model.eval(), (x,), path, dynamo=False, opset_version=17,
                              input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    except Exception as err:
        _log(f"timm ONNX export failed: {err!r}")
        return []
    return _time_artifacts({"timm-onnx": ("onnx", path), "timm-openvino": ("openvino", path)},
                           "torch", variant, args, rng, layout="nchw")


def cold(args):
    """Fresh process: build one model, time build + first predict, report peak RSS.

    The clock starts after ``import keras`` (which loads the backend: 4-18 s here, the same
    for both models and the largest source of noise between fresh processes); our side
    still pays for ``import keras_efficientnet``, inside ``build``."""
    import resource

    import keras  # noqa: F401  (loads the backend before the clock starts)
    import numpy as np

    start = time.perf_counter()
    model = build(args.cold_model, args.variants[0], args.resolution)
    built = time.perf_counter()
    x = np.random.default_rng(0).uniform(0, 255, (args.batches[-1], args.resolution,
                                                   args.resolution, 3)).astype("float32")
    _sync(model.predict_on_batch(x))
    done = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB -> MiB (Linux)
    print("RESULT " + json.dumps({"build_s": built - start, "first_call_s": done - start,
                                  "peak_rss_mb": rss}), flush=True)


# --------------------------------------------------------------------------- driver

def _run_child(backend, extra, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), *extra]
    proc = subprocess.run(cmd, env=_env(backend), stdout=subprocess.PIPE, stderr=None,
                          text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{backend} child {extra[:2]} failed with exit code {proc.returncode}")


def _common_args(args):
    out = ["--variants", *args.variants, "--resolution", str(args.resolution),
           "--batches", *map(str, args.batches), "--train-batch", str(args.train_batch),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    out += ["--depthwise-impls", *args.depthwise_impls]
    out += ["--data-formats", *args.data_formats]
    out += ["--train-variants", *args.train_variants, "--impl-variants", *args.impl_variants]
    out += ["--bn-folds", *args.bn_folds, "--fold-variants", *args.fold_variants]
    if not args.fold:
        out.append("--no-fold")
    if not args.exports:
        out.append("--no-exports")
    if args.no_timm:
        out.append("--no-timm")
    if args.no_torchscript:
        out.append("--no-torchscript")
    return out


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info():
    import importlib.metadata as md

    cpu = cpu_name()
    versions = {}
    for pkg in ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "timm",
                "onnxruntime", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions,
            "loadavg_start": os.getloadavg(), "peak_gflops": measure_peak_gflops()}


def measure_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 arithmetic peak as its BLAS reaches it: the best of ``repeats``
    ``n x n`` matrix products in NumPy (every core), in GFLOP/s (a multiply-add is 2 FLOPs).
    A large sgemm runs close to the FMA units' limit, so this is the ceiling a convolutional
    network's images/s is measured against (the "% peak" columns)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: threads started, pages touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


def _macs(variant: str, resolution: int) -> int | None:
    """Multiply-adds of one forward pass of ``variant`` at ``resolution`` (None if unknown)."""
    try:
        from keras_efficientnet.flops import count_flops_spec
        from keras_efficientnet.specs import get_spec

        return int(count_flops_spec(get_spec(variant), resolution))
    except Exception:  # a variant name the package does not know: no fraction, not an error
        return None


def peak_fraction(report, variant: str, metric: str, ips: float) -> float | None:
    """Fraction of the measured float32 peak that ``ips`` images/s of ``variant`` reaches:
    2 x multiply-adds x images/s (x 3 for a training step: forward, input and weight
    gradients) over the peak."""
    peak = report["machine"].get("peak_gflops")
    if not peak or not metric.startswith(("infer", "train")):
        return None
    cache = report.setdefault("macs", {})
    if variant not in cache:
        cache[variant] = _macs(variant, report["args"]["resolution"])
    if cache[variant] is None:
        return None
    passes = 3 if metric.startswith("train") else 1
    return 2.0 * cache[variant] * passes * ips / (peak * 1e9)


def _find(results, backend, variant, model, metric):
    for r in results:
        if (r["backend"], r["variant"], r["model"], r["metric"]) == (backend, variant, model, metric):
            return r
    return None


def ratio_rows(report):
    """Table rows: ours vs each reference per backend / variant / metric."""
    rows = []
    results = report["results"]
    keys = sorted({(r["backend"], r["variant"], r["metric"]) for r in results},
                  key=lambda k: (BACKENDS.index(k[0]) if k[0] in BACKENDS else 9, k[1], k[2]))
    for backend, variant, metric in keys:
        ours = _find(results, backend, variant, "ours", metric)
        if ours is None:
            continue
        others = sorted({r["model"] for r in results if (r["backend"], r["variant"], r["metric"])
                         == (backend, variant, metric) and r["model"] != "ours"})
        for other in others:
            ref = _find(results, backend, variant, other, metric)
            rows.append({"backend": backend, "variant": variant, "metric": metric,
                         "reference": other, "ours_ips": ours["median_ips"],
                         "ref_ips": ref["median_ips"],
                         "ratio_median": ref["median_s"] / ours["median_s"],
                         "ratio_min": ref["min_s"] / ours["min_s"]})
    for c in report.get("cold", []):
        if c["ours"] and c["ka"]:
            o = [m["first_call_s"] for m in c["ours"]]
            k = [m["first_call_s"] for m in c["ka"]]
            rows.append({"backend": c["backend"], "variant": c["variant"], "metric": "first_call",
                         "reference": "ka", "ours_s": statistics.median(o),
                         "ref_s": statistics.median(k),
                         "ratio_median": statistics.median(k) / statistics.median(o),
                         "ratio_min": min(k) / min(o)})
            om = statistics.median(m["peak_rss_mb"] for m in c["ours"])
            km = statistics.median(m["peak_rss_mb"] for m in c["ka"])
            rows.append({"backend": c["backend"], "variant": c["variant"], "metric": "peak_rss",
                         "reference": "ka", "ours_mb": om, "ref_mb": km,
                         "ratio_median": km / om, "ratio_min": None})
    return rows


#: The speed targets (issue "Speed"): (backend or None for every backend, variant, metric, minimum
#: ratio against keras.applications in the same run).
TARGETS = [(None, "EfficientNetB0", "infer_b32", 1.0), (None, "EfficientNetV2S", "infer_b32", 1.0),
           (None, "EfficientNetB0", "train_b16", 1.0), (None, "EfficientNetB0", "first_call", 1.0),
           (None, "EfficientNetV2S", "first_call", 1.0),
           ("jax", "EfficientNetB0", "infer_b32", 3.0), ("jax", "EfficientNetB0", "train_b16", 5.0)]


def target_lines(report):
    """One line per speed target: the measured ratio against keras.applications, met or not."""
    lines = []
    for backend, variant, metric, need in TARGETS:
        for b in ([backend] if backend else BACKENDS):
            row = next((r for r in report["rows"] if (r["backend"], r["variant"], r["metric"],
                        r["reference"]) == (b, variant, metric, "ka")), None)
            if row is None:
                continue
            ok = row["ratio_median"] >= need
            lines.append(f"- {b} {variant} {metric}: {row['ratio_median']:.2f}x "
                         f"(target >= {need:.1f}x) - {'met' if ok else '**not met**'}")
    return lines


#: The PyTorch targets of the second speed issue: ours >= 1.0x timm's faster layout (NCHW or
#: channels_last), same run, for these variants and metrics.
TIMM_TARGETS = [("EfficientNetB0", "infer_b1"), ("EfficientNetB0", "infer_b32"),
                ("EfficientNetV2S", "infer_b1"), ("EfficientNetV2S", "infer_b32"),
                ("EfficientNetB0", "train_b16")]


def timm_lines(report):
    """Per PyTorch target: our Keras model (``ours``) and, for inference, the same model through
    ``ke.torchscript`` (``ours[torchscript]``, the optimised frozen trace) against the faster of
    timm's two layouts, as ours / timm throughput (> 1: ours is faster), met or not at 1.0x."""
    lines = []
    results = report["results"]
    for variant, metric in TIMM_TARGETS:
        timm_rows = [r for r in (_find(results, "torch", variant, name, metric)
                                 for name in ("timm", "timm[channels_last]")) if r is not None]
        if not timm_rows:
            continue
        best = max(timm_rows, key=lambda r: r["median_ips"])
        parts = []
        for name in ("ours", "ours[torchscript]", "ours[channels_first+torchscript]"):
            row = _find(results, "torch", variant, name, metric)
            if row is None:
                continue
            ratio = row["median_ips"] / best["median_ips"]
            parts.append(f"{name} {ratio:.2f}x ({'met' if ratio >= 1.0 else '**not met**'})")
        if parts:
            lines.append(f"- torch {variant} {metric} vs {best['model']} "
                         f"({best['median_ips']:.1f} img/s): " + ", ".join(parts))
    return lines or ["- no PyTorch rows with timm in this run"]


def backend_lines(report):
    """Our default model's throughput on every backend, fastest first, per variant and metric:
    the answer to "which backend should I use on this CPU" (and whether JAX is still the
    slowest)."""
    lines = []
    results = report["results"]
    for variant, metric in sorted({(r["variant"], r["metric"]) for r in results
                                   if r["model"] == "ours"}):
        speed = {}
        for backend in BACKENDS:
            row = _find(results, backend, variant, "ours", metric)
            if row is not None:
                speed[backend] = row["median_ips"]
        if len(speed) > 1:
            ranked = sorted(speed, key=speed.get, reverse=True)
            lines.append(f"- {variant} {metric}: " +
                         " > ".join(f"{b} {speed[b]:.1f}" for b in ranked) + " img/s")
    return lines or ["- one backend in this run"]


def runtime_lines(report):
    """Per variant and batch: every exported artifact's throughput, and our best export against
    timm's own ONNX in onnxruntime (the target of the second speed issue: >= 1.3x)."""
    lines = []
    results = report["results"]
    exported = [r for r in results if r["model"].startswith(("ours-", "timm-"))]
    for variant, metric in sorted({(r["variant"], r["metric"]) for r in exported}):
        rows = sorted((r for r in exported if (r["variant"], r["metric"]) == (variant, metric)),
                      key=lambda r: -r["median_ips"])
        def entry(r):
            f = peak_fraction(report, variant, metric, r["median_ips"])
            return f"{r['model']} {r['median_ips']:.1f}" + ("" if f is None else f" ({100 * f:.0f}% peak)")

        text = ", ".join(entry(r) for r in rows)
        ours = [r for r in rows if r["model"].startswith("ours-")]
        timm_onnx = next((r for r in rows if r["model"] == "timm-onnx"), None)
        if ours and timm_onnx:
            best = ours[0]
            ratio = timm_onnx["median_s"] / best["median_s"]
            text += (f" img/s; best ours ({best['model']}) / timm-onnx = {ratio:.2f}x "
                     f"(target >= 1.3x) - {'met' if ratio >= 1.3 else '**not met**'}")
        else:
            text += " img/s"
        lines.append(f"- {variant} {metric}: {text}")
    return lines


def markdown(report):
    info = report["machine"]
    a = report["args"]
    lines = ["# Benchmark: keras_efficientnet vs keras.applications / timm", "",
             f"- Command: `{report['command']}`",
             f"- Date (UTC): {report['date']}",
             f"- Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
             f"{info['platform']}",
             f"- Load average at start / end: {', '.join(f'{v:.1f}' for v in info['loadavg_start'])}"
             f" / {', '.join(f'{v:.1f}' for v in report['loadavg_end'])} (shared machine)",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
             f"- Resolution {a['resolution']} px, inference batches {a['batches']}, train batch "
             f"{a['train_batch']}, warm-up {a['warmup']}, repeats {a['repeats']} (interleaved "
             "in one process); random weights, float32, CPU",
             *([f"- Measured float32 peak: {info['peak_gflops']:.0f} GFLOP/s (NumPy's BLAS, "
                "2048 x 2048 matrix product, best of 5 at the start and at the end of the run, all cores); `% peak` = 2 x multiply-adds "
                "(`count_flops_spec` at this resolution; x 3 for a training step) x images/s / "
                "that peak: the distance to the hardware limit"] if info.get("peak_gflops") else []),
             "- `ratio` = reference time / our time: > 1 means ours is faster. Throughput in "
             "images/s (median). First call = build + trace/compile + first predict in a fresh "
             "process, timed from after `import keras` (ours includes `import keras_efficientnet`); peak memory = ru_maxrss of that fresh process (build + one predict of "
             "the largest inference batch); for those two, ratio = reference / ours as well.",
             "- `ours` = default (keras.applications' flat graph, `depthwise_impl=\"auto\"`); `ours[keras]` / `ours[shifted]` = "
             "our model forced to one depthwise implementation, measured as a reference row; "
             "`ours[channels_first]` = our model built with `data_format=\"channels_first\"` "
             "(fed NCHW inputs); `ours[bn_fold=...]` = our model in `layout=\"blocks\"` with the "
             "blocks' BatchNorm folding forced (inference only).",
             "", "Targets against keras.applications (median ratio, this run):", "",
             *target_lines(report),
             "", "PyTorch against timm (target >= 1.0x timm's faster layout; median throughput, "
             "this run):", "",
             *timm_lines(report),
             "", "Our default model on each backend (median images/s, fastest first):", "",
             *(backend_lines(report) if "--merge" not in report["command"] else [
                 "- not shown for a merged report: its backends ran at different times, and "
                 "absolute speeds of a shared machine are not comparable across runs"]),
             "", "Exported artifacts (median images/s; `ours-onnx` onnxruntime, `ours-tflite` "
             "LiteRT/XNNPACK, `ours-openvino` OpenVINO float32, all of our TensorFlow export; "
             "`timm-onnx` / `timm-openvino` timm's own `torch.onnx` export in onnxruntime / "
             "OpenVINO):", "",
             *(runtime_lines(report) or ["- none in this run"]),
             "", "| backend | variant | metric | reference | ours | reference value | ratio (median) | ratio (min) | ours % peak | reference % peak |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        if r["metric"] == "first_call":
            ours, ref = f"{r['ours_s']:.1f} s", f"{r['ref_s']:.1f} s"
        elif r["metric"] == "peak_rss":
            ours, ref = f"{r['ours_mb']:.0f} MB", f"{r['ref_mb']:.0f} MB"
        else:
            ours, ref = f"{r['ours_ips']:.2f} img/s", f"{r['ref_ips']:.2f} img/s"
        rmin = "" if r["ratio_min"] is None else f"{r['ratio_min']:.2f}x"
        fractions = [peak_fraction(report, r["variant"], r["metric"], r[k])
                     if k in r else None for k in ("ours_ips", "ref_ips")]
        pct = ["" if f is None else f"{100 * f:.1f}%" for f in fractions]
        lines.append(f"| {r['backend']} | {r['variant']} | {r['metric']} | {r['reference']} | "
                     f"{ours} | {ref} | {r['ratio_median']:.2f}x | {rmin} | {pct[0]} | {pct[1]} |")
    if report.get("errors"):
        lines += ["", "Errors:", *[f"- {e}" for e in report["errors"]]]
    return "\n".join(lines) + "\n"


def chart(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["reference"] in ("ka", "timm")]
    if not rows:
        return
    short = {"tensorflow": "TF", "jax": "JAX", "torch": "torch"}
    labels = [f"{short.get(r['backend'], r['backend'])} {r['variant'].replace('EfficientNet', '')} {r['metric']}"
              f"{'' if r['reference'] == 'ka' else ' vs timm'}" for r in rows]
    values = [r["ratio_median"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.5))
    colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(range(len(rows)), values, color=colors)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("speed-up of keras_efficientnet (reference time / ours, median; log scale)")
    ax.set_title(f"{report['machine']['cpu']}, {report['machine']['cores']} cores, "
                 f"{report['args']['resolution']} px", fontsize=9)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.2f}x", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


DOCS_HEADER = """# Benchmarks

Speed of keras_efficientnet against keras.applications (same backend, variant, batch and
resolution) and timm, produced by one command (`benchmarks/run.py`; `--help` lists the
options). Each backend runs in its own process; ours and the reference are timed interleaved
in that process, so a busy machine slows both alike; first-call latency and peak memory come
from fresh processes. Everything below (table and chart) is exactly what the command wrote to
`benchmarks/results/latest.md` / `latest.png`; rerun it to reproduce on your machine:

    {command}

(`python benchmarks/run.py --quick` is a 10-minute version at 128 px.)

What makes the difference: on JAX (and TensorFlow with XLA) the depthwise convolution is
computed by `ShiftedDepthwiseConv2D` (k×k shifted multiply-adds that XLA fuses, instead of
XLA's slow CPU depthwise convolution and its much slower gradient); MBConv's
`depthwise_impl="auto"` picks it where it is faster. Same weights, same outputs (within 1e-5,
tests/test_depthwise.py). On TensorFlow (tf.function, no XLA) and PyTorch the native depthwise
kernels are faster, so `auto` keeps them there (the `ours[shifted]` rows show by how much).
On JAX the 1x1 convolutions (most of the multiply-adds) are computed as matrix products by
`PointwiseConv2D` (a `Conv2D` subclass, same weights): XLA's CPU matmul and its gradients are
1.4-2.6x faster than its 1x1 convolution. For training on JAX the shifted convolution's
gradient is hand-written (`keras_efficientnet/layers/depthwise_jax.py`): JAX's autodiff of the
k×k shifted sum made k×k separate reductions for the kernel gradient and k×k padded copies for
the input gradient, which took most of the B0 training step; the custom VJP computes the
kernel gradient in one fused pass and the input gradient as a (per-phase, at stride 2)
correlation, with the same values (tests/test_depthwise.py, against Keras' DepthwiseConv2D).

BatchNorm: the default model is keras.applications' flat graph, layer for layer. Its
BatchNorm layers are `FastBatchNormalization` (a `keras.layers.BatchNormalization` subclass,
same variables and config, saved as the core layer): on TensorFlow and PyTorch, in inference
and training, it runs the backend's one fused BatchNorm kernel (and its gradient) instead of
Keras 3's separate moments and element-wise ops, which is most of the TensorFlow margin over
keras.applications on the same graph and of the training-step margin on both backends
(tests/test_batch_norm.py; outputs, gradients and moving statistics equal up to rounding). The `ours[bn_fold=...]` rows are the
other layout, `layout="blocks"` (one composite layer per block), with the blocks' folding forced:
in inference-mode calls each block computes its convolution + BatchNorm pairs as one
convolution with a kernel scaled from the live BatchNorm variables, plus a bias add
(tests/test_folding.py); training, weights and saving are unchanged. `ours+fold` is the
flat model with every BatchNorm folded into its convolution (`fuse_batchnorm`, a copy for
inference).

Data layout: the `ours[channels_first]` rows are our model built with
`data_format="channels_first"` and fed NCHW inputs (same weights). XLA on CPU prefers NHWC, so
on JAX that layout is much slower. On PyTorch, Keras' own convolution copies every NHWC input
to NCHW and back to channels_last memory; our default model's convolutions
(`PointwiseConv2D`: 1x1 as a matmul, others as torch's conv2d on the channels_last view;
`NativeDepthwiseConv2D` for the depthwise ones) skip those copies, so `channels_last` is
what to use there too, and users who already hold NCHW tensors can still build with
`channels_first`. TensorFlow's CPU convolution accepts NHWC only, so there it does not run.
The default stays Keras' `channels_last` on every backend.

On a shared machine ratios are noisy even when interleaved: `ours` and the forced row equal
to its default (`ours[shifted]` on JAX, `ours[keras]` on TensorFlow and PyTorch) are the same
network, so the gap between those rows shows the noise of that run.
Rows named `ours+fold`, `ours-onnx`, `ours-tflite` and `ours-openvino` compare our default
model with its BatchNorm-folded copy and its exported ONNX (onnxruntime), TFLite (LiteRT) and
OpenVINO IR (OpenVINO runtime, float32) files; `timm` is timm's model in PyTorch eager mode
(NCHW), `timm[channels_last]` the same model and input in `torch.channels_last` memory format,
`timm-onnx` / `timm-openvino` timm's own `torch.onnx` export in onnxruntime / OpenVINO.
`ours[torchscript]` is our default model through `ke.torchscript` (Keras' own PyTorch
computation traced once and frozen: the same kernels without Keras' per-layer Python overhead),
`ours[channels_first+torchscript]` the same for the model built with
`data_format="channels_first"` and fed NCHW (no layout permutes around the convolutions).

![speed-up chart]({chart})

"""


TARGETS_HEADER = """# Benchmark targets

The rows the speed targets are set on, against keras.applications (same backend, variant,
batch and resolution): B0 and V2-S inference at batch 32, the B0 training step, first call.
A shorter run than docs/benchmarks.md (no forced-implementation, folded or exported rows;
the command below says which rows each part has), made to check the targets after a change;
docs/benchmarks.md explains the method and has every row. Written by:

    {command}

![speed-up chart]({chart})

"""


def targets_only(args: dict) -> bool:
    """Whether a run's arguments are the ``--targets`` set (the rows the targets are set on)."""
    return (list(args.get("batches") or []) == [32] and not args.get("exports")
            and not args.get("fold") and args.get("no_timm") and args.get("no_torchscript")
            and not args.get("depthwise_impls") and not args.get("data_formats")
            and not args.get("bn_folds"))


def _finish(report, out, docs=None):
    report["rows"] = ratio_rows(report)
    text = markdown(report)
    os.makedirs(out, exist_ok=True)
    _write(os.path.join(out, "latest.json"), json.dumps(report, indent=1))
    _write(os.path.join(out, "latest.md"), text)
    chart(report, os.path.join(out, "latest.png"))
    if docs:
        # the docs site only serves files under docs/: copy the chart next to the page
        import shutil
        assets = os.path.join(os.path.dirname(os.path.abspath(docs)), "assets")
        os.makedirs(assets, exist_ok=True)
        # one chart per page: docs/benchmarks.md -> assets/benchmarks.png
        name = os.path.splitext(os.path.basename(docs))[0] + ".png"
        shutil.copyfile(os.path.join(out, "latest.png"), os.path.join(assets, name))
        rel = f"assets/{name}"
        body = text.split("\n", 2)[2]  # the table page without its title
        template = TARGETS_HEADER if targets_only(report["args"]) else DOCS_HEADER
        header = template.replace("{chart}", rel).replace("{command}", report["command"])
        _write(docs, header + body)
    print(text)
    return 0


def merge(paths, out, docs=None):
    """One report from several runs' JSON files (their commands are listed)."""
    reports = []
    for path in paths:
        with open(path) as f:
            reports.append(json.load(f))
    merged = dict(reports[0])
    if len(reports) > 1:  # one file: re-render its table unchanged (same command)
        merged["command"] = " ; ".join(r["command"] for r in reports) + \
            " ; python benchmarks/run.py --merge " + " ".join(paths)
    merged["date"] = " / ".join(r["date"] for r in reports)
    # a later file replaces the earlier files' figures of every backend it measured
    merged["results"], merged["cold"] = [], []
    for r in reports:
        backends = {x["backend"] for x in r["results"]} | {x["backend"] for x in r["cold"]}
        for key in ("results", "cold"):
            merged[key] = [x for x in merged[key] if x["backend"] not in backends] + r[key]
    merged["errors"] = [e for r in reports for e in r["errors"]]
    merged["loadavg_end"] = max((r["loadavg_end"] for r in reports), key=lambda v: v[0])
    return _finish(merged, out, docs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", default=["EfficientNetB0", "EfficientNetV2S"])
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--resolution", type=int, default=None, help="input size (default 224)")
    p.add_argument("--batches", type=int, nargs="+", default=None,
                   help="inference batch sizes (default 1 32)")
    p.add_argument("--train-batch", type=int, default=None, help="training batch (default 16)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--cold-repeats", type=int, default=None,
                   help="fresh processes per model for first-call latency and memory")
    p.add_argument("--depthwise-impls", nargs="*", default=["keras", "shifted"],
                   choices=["keras", "shifted"],
                   help="also time our model forced to these depthwise implementations")
    p.add_argument("--data-formats", nargs="*", default=["channels_first"],
                   choices=["channels_first"],
                   help="also time our model built with these data formats (NCHW inputs)")
    p.add_argument("--train-variants", nargs="*", default=["EfficientNetB0"],
                   help="variants whose training step is timed (default: B0)")
    p.add_argument("--impl-variants", nargs="*", default=["EfficientNetB0"],
                   help="variants for which the forced depthwise implementations are timed")
    p.add_argument("--bn-folds", nargs="*", default=["inference", "never"],
                   choices=["inference", "never"],
                   help="also time inference of our model with the blocks' bn_fold forced")
    p.add_argument("--fold-variants", nargs="*", default=["EfficientNetB0", "EfficientNetV2S"],
                   help="variants for which the forced bn_fold settings are timed")
    p.add_argument("--no-fold", dest="fold", action="store_false",
                   help="skip our BatchNorm-folded inference model")
    p.add_argument("--no-exports", dest="exports", action="store_false",
                   help="skip ONNX / TFLite timings")
    p.add_argument("--no-timm", action="store_true")
    p.add_argument("--no-torchscript", action="store_true",
                   help="skip the ours[torchscript] rows (ke.torchscript, PyTorch backend)")
    p.add_argument("--no-cold", action="store_true", help="skip first-call latency and memory")
    p.add_argument("--quick", action="store_true",
                   help="128 px, batches 1 and 32, train batch 16, 1 warm-up, 3 repeats, 1 cold run")
    p.add_argument("--targets", action="store_true",
                   help="only the rows the targets are set on (inference batch 32, the training "
                        "step, first call; no forced-implementation, fold, export or timm rows): "
                        "about 25 minutes at 224 px; with --docs it writes a short page")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="combine the latest.json of runs made separately (e.g. one per backend) "
                        "into one table in --out, and exit; a later file's backends replace "
                        "the same backends of earlier files")
    p.add_argument("--docs", default=None, metavar="MD",
                   help="also write this docs page (e.g. docs/benchmarks.md) from the same table")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cold-model", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = {"resolution": 128, "batches": [1, 32], "train_batch": 16, "warmup": 1,
             "repeats": 3, "cold_repeats": 1}
    full = {"resolution": 224, "batches": [1, 32], "train_batch": 16, "warmup": 2,
            "repeats": 5, "cold_repeats": 2}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.targets:
        args.batches = [32]
        args.depthwise_impls, args.data_formats, args.bn_folds = [], [], []
        args.fold, args.exports, args.no_timm, args.no_torchscript = False, False, True, True
    if args.worker:
        return worker(args)
    if args.merge:
        return merge(args.merge, args.out, args.docs)
    if args.cold_model:
        return cold(args)

    os.makedirs(args.out, exist_ok=True)
    report = {"command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "machine": machine_info(),
              "args": {k: v for k, v in vars(args).items() if k not in ("worker", "cold_model", "out")},
              "results": [], "cold": [], "errors": []}
    for backend in args.backends:
        _log(f"== {backend}: warm measurements")
        try:
            report["results"] += _run_child(backend, ["--worker", *_common_args(args)], args.timeout)
        except Exception as err:
            report["errors"].append(f"{backend} warm: {err}")
        if args.no_cold:
            continue
        for variant in args.variants:
            entry = {"backend": backend, "variant": variant, "ours": [], "ka": []}
            for r in range(args.cold_repeats):
                for which in (("ours", "ka") if r % 2 == 0 else ("ka", "ours")):
                    _log(f"== {backend}: cold {which} {variant} ({r + 1}/{args.cold_repeats})")
                    extra = ["--cold-model", which, "--variants", variant, "--resolution",
                             str(args.resolution), "--batches", str(max(args.batches))]
                    try:
                        entry[which].append(_run_child(backend, extra, args.timeout))
                    except Exception as err:
                        report["errors"].append(f"{backend} cold {which} {variant}: {err}")
            report["cold"].append(entry)
    report["loadavg_end"] = os.getloadavg()
    # the higher of the start and end measurements: a busy moment only lowers it
    report["machine"]["peak_gflops"] = max(report["machine"]["peak_gflops"], measure_peak_gflops())
    return _finish(report, args.out, args.docs)


if __name__ == "__main__":
    sys.exit(main())

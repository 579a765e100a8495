"""How long the command line takes to answer ``--help``, against what a Keras program pays to start.

Each command runs in a fresh process (the way a user types it), in rounds that also run the
reference, so a busy machine slows both alike. The reference is ``python -c "import
keras"`` under the same ``KERAS_BACKEND``: the start-up cost of any command line that loads
Keras (and its backend) before it parses its arguments, which this one did before its
commands imported their heavy parts lazily. ``python -c pass`` is the interpreter's own floor.

    python benchmarks/cli_startup.py                     # all backends, 5 repeats
    python benchmarks/cli_startup.py --docs docs/benchmarks_cli.md

Writes ``benchmarks/results/cli_startup.{md,json,png}`` (and the docs page with ``--docs``).
The target is an answer in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = ("tensorflow", "jax", "torch")
COMMANDS = (["--help"], ["classify", "--help"], ["train", "--help"], ["export", "--help"],
            ["segment", "--help"], ["detect", "--help"], ["list", "--help"])
TARGET_S = 2.0


def _cli():
    exe = shutil.which("keras-efficientnet")
    return [exe] if exe else [sys.executable, "-m", "keras_efficientnet"]


def _env(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _time(cmd, env):
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-300:]}")
    return seconds


def measure(backends, repeats):
    """Median and best seconds of every command and of the references, per backend."""
    cli = _cli()
    rows = []
    for backend in backends:
        env = _env(backend)
        runs = {"import keras": [], "python -c pass": []}
        runs.update({" ".join(c): [] for c in COMMANDS})
        for r in range(repeats):
            print(f"[{backend}] round {r + 1}/{repeats}", file=sys.stderr, flush=True)
            runs["import keras"].append(_time([sys.executable, "-c", "import keras"], env))
            for command in COMMANDS:  # every round: the reference, then each command once
                runs[" ".join(command)].append(_time(cli + list(command), env))
            runs["python -c pass"].append(_time([sys.executable, "-c", "pass"], env))
        ref = statistics.median(runs["import keras"])
        for name, seconds in runs.items():
            med = statistics.median(seconds)
            rows.append({"backend": backend, "command": name, "median_s": med, "min_s": min(seconds),
                         "ratio": ref / med, "under_target": med < TARGET_S, "n": len(seconds)})
    return rows


def markdown(report):
    lines = ["# CLI start-up: `keras-efficientnet ... --help`", "",
             f"- Command: `{report['command']}`", f"- Date (UTC): {report['date']}",
             f"- Machine: {report['machine']}; Python {sys.version.split()[0]}",
             f"- Each command in a fresh process, {report['repeats']} times, in rounds with the "
             "reference `python -c \"import keras\"` under the same backend (what a command "
             "line that loads Keras before parsing its arguments pays). `ratio` = reference "
             f"median / ours: > 1 means ours answers sooner. Target: under {TARGET_S:.0f} s.",
             "", "![CLI start-up](assets/cli_startup.png)", "",
             "| backend | command | median | best | ratio vs import keras | under 2 s |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        ours = r["command"] not in ("import keras", "python -c pass")
        ratio = f"{r['ratio']:.1f}x" if ours else "(reference)"
        lines.append(f"| {r['backend']} | `{r['command']}` | {r['median_s']:.2f} s | "
                     f"{r['min_s']:.2f} s | {ratio} | "
                     f"{('yes' if r['under_target'] else '**no**') if ours else ''} |")
    return "\n".join(lines) + "\n"


def chart(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = sorted({r["backend"] for r in report["rows"]}, key=BACKENDS.index)
    names = [" ".join(c) for c in COMMANDS] + ["import keras"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        values = [next(r["median_s"] for r in report["rows"]
                       if r["backend"] == backend and r["command"] == n) for n in names]
        ax.bar([j + i * width for j in range(len(names))], values, width, label=backend)
    ax.axhline(TARGET_S, color="black", linestyle="--", linewidth=1, label=f"target {TARGET_S:.0f} s")
    ax.set_xticks([j + width * (len(backends) - 1) / 2 for j in range(len(names))])
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("seconds (median, fresh process)")
    ax.set_title("keras-efficientnet --help vs python -c 'import keras'")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--repeats", type=int, default=5, help="fresh processes per command (default 5)")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="results folder")
    p.add_argument("--docs", default=None, metavar="MD", help="also write this docs page")
    p.add_argument("--render", default=None, metavar="JSON",
                   help="write the pages again from a saved cli_startup.json (measures nothing)")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            return _publish(json.load(f), args)
    from run import cpu_name  # benchmarks/run.py, beside this file (on sys.path as the script's folder)

    cpu = cpu_name()
    report = {"command": "python benchmarks/cli_startup.py " + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "repeats": args.repeats,
              "machine": f"{cpu}, {os.cpu_count()} cores, load average "
                         f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} at the start",
              "rows": measure(args.backends, args.repeats)}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "cli_startup.json"), "w") as f:
        json.dump(report, f, indent=1)
    return _publish(report, args)


def _publish(report, args):
    os.makedirs(args.out, exist_ok=True)
    text = markdown(report)
    with open(os.path.join(args.out, "cli_startup.md"), "w") as f:
        f.write(text.replace("assets/cli_startup.png", "cli_startup.png"))
    chart(report, os.path.join(args.out, "cli_startup.png"))
    if args.docs:
        assets = os.path.join(os.path.dirname(os.path.abspath(args.docs)), "assets")
        os.makedirs(assets, exist_ok=True)
        shutil.copy(os.path.join(args.out, "cli_startup.png"), os.path.join(assets, "cli_startup.png"))
        with open(args.docs, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

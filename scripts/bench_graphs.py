"""Benchmark ONNX graphs against each other in one process: ONNX Runtime on the CPU, runs alternated.

    python scripts/bench_graphs.py OLD.onnx NEW.onnx                 # 768x512, median of 9 rounds
    python scripts/bench_graphs.py A.onnx B.onnx --size 480 640 --repeats 15 --profile

For each graph: the median seconds of one image (one run of every graph per
round, the order turning each round, so that a slow spell of the machine hits
them all), its largest difference from the first graph's output on the same
image, and with ``--profile`` where the time goes by operator (ONNX Runtime's
profiler, one more pass). Sessions are set up as stst sets them up
(:func:`stst.infer.onnxruntime_graph.session_options`: no spinning threads).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stst.base.machine import cpu_name
from stst.infer.onnxruntime_graph import GraphRunner, session_options


def operator_shares(path: Path, image: np.ndarray) -> list[tuple[str, float]]:
    """Milliseconds by operator type for one run of ``path`` on ``image``, largest first."""
    options = session_options()
    options.enable_profiling = True
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: image}
    for _ in range(2):  # a warm-up run, then the one counted: the second half of the kernel events
        session.run(None, feed)
    record = session.end_profiling()
    events = json.loads(Path(record).read_text())
    os.remove(record)
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    totals: collections.Counter = collections.Counter()
    for event in kernels[len(kernels) // 2:]:
        totals[event["args"]["op_name"]] += event["dur"] / 1000
    return totals.most_common()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("graphs", nargs="+", type=Path)
    parser.add_argument("--size", nargs=2, type=int, default=(512, 768), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--profile", action="store_true", help="also the time by operator of each graph")
    args = parser.parse_args()

    image = np.random.default_rng(0).random((1, 3, *args.size), dtype=np.float32)
    runners = [GraphRunner(path) for path in args.graphs]
    outputs = [runner(image) for runner in runners]  # warm-up, and the outputs compared
    seconds: list[list[float]] = [[] for _ in runners]
    for round_ in range(args.repeats):
        for i in range(len(runners)):
            k = (round_ + i) % len(runners)
            start = time.perf_counter()
            runners[k](image)
            seconds[k].append(time.perf_counter() - start)
    height, width = args.size
    print(f"{cpu_name()}, onnxruntime {ort.__version__}, {len(os.sched_getaffinity(0))} cpus; one {height}x{width} "
          f"image, median of {args.repeats} rounds, graphs alternated")
    print("| graph | seconds | vs first | largest difference from the first (0..1) |")
    print("|---|---|---|---|")
    reference = statistics.median(seconds[0])
    for path, times, out in zip(args.graphs, seconds, outputs):
        median = statistics.median(times)
        print(f"| {path.name} | {median:.4f} | {median / reference:.2f}x | {np.abs(out - outputs[0]).max():.1e} |")
    if args.profile:
        for path in args.graphs:
            shares = operator_shares(path, image)
            total = sum(ms for _, ms in shares)
            print(f"\n{path.name}: {total:.1f} ms in operators; " +
                  ", ".join(f"{op} {ms:.1f} ({100 * ms / total:.0f}%)" for op, ms in shares[:8]))


if __name__ == "__main__":
    main()

"""The automatic engine and precision on CPUs, chosen by what measures faster on the machine at hand.

A CPU flag is not enough: bf16 autocast ran 1.7x faster than fp32 on an AMD
EPYC with AVX512-BF16, but 1.2x slower on an Intel Xeon with AVX512-BF16 and
no AMX; ONNX Runtime ran 1.55x faster than eager fp32 on an AMD EPYC with AVX2
only. So the first stylization measures the candidates that can run here
(about a second, plus the one-off ONNX export) on the model at hand and caches
the answer per CPU, library versions, thread count, network width and set of
candidates in ``$STST_HOME/precision.json``. A candidate must beat the first
(the reference, eager fp32) by its margin: bf16 changes the output slightly
(0.24 grey levels on average), so it must pay clearly; ONNX Runtime's fp32
output equals eager fp32 within 2e-6.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch

from ..base.devices import cpu_name
from ..base.fileio import atomic_path
from ..base.home import stst_home

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
CALIBRATION_FILE = "precision.json"
CALIBRATION_SIZE = 256
# How much faster than the reference a candidate must measure to be chosen.
MARGINS = {"torch-bf16": 1.1, "onnxruntime-fp32": 1.05}

Runner = Callable[[torch.Tensor], object]
Measure = Callable[[Runner], float]


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check and check())


def machine_key(width: object, candidates: list[str]) -> str:
    """What a measurement depends on: CPU, library versions, threads, the network's width and the candidates."""
    try:
        import onnxruntime

        libraries = f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"
    except ImportError:
        libraries = f"torch {torch.__version__}"
    return f"{cpu_name()} | {libraries} | {torch.get_num_threads()} threads | width {width} | {', '.join(candidates)}"


def median_seconds(runner: Runner, runs: int = 3) -> float:
    """Median time of one 256x256 image through ``runner``, after a warm-up run."""
    x = torch.rand(1, 3, CALIBRATION_SIZE, CALIBRATION_SIZE)
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        runner(x)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def fastest(width: object, candidates: dict[str, Callable[[], Runner]], measure: Measure = median_seconds) -> str:
    """The name of the candidate to use, measured once per machine and cached.

    ``candidates`` maps names to functions that build a runner; the first is
    the reference. With a single candidate nothing is measured.
    """
    names = list(candidates)
    if len(names) == 1:
        return names[0]
    cache = stst_home() / CALIBRATION_FILE
    try:
        known = json.loads(cache.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    key = machine_key(width, names)
    if isinstance(known.get(key), dict) and known[key].get("choice") in names:
        return known[key]["choice"]
    seconds = {name: measure(build()) for name, build in candidates.items()}
    choice = min(names, key=lambda n: seconds[n] * (MARGINS.get(n, 1.0) if n != names[0] else 1.0))
    known[key] = {"choice": choice, "seconds": {n: round(s, 4) for n, s in seconds.items()},
                  "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(known, indent=1))
    except OSError:  # a read-only cache only means measuring again next time
        pass
    return choice

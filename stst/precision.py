"""The automatic inference precision, chosen by what measures faster on the machine at hand.

A CPU flag is not enough: bf16 autocast ran 1.7x faster than fp32 on an AMD
EPYC with AVX512-BF16, but 1.2x slower on an Intel Xeon with AVX512-BF16 and
no AMX. So where oneDNN reports native bf16, the first stylization measures
both on the model at hand (about a second) and caches the answer per CPU,
torch version, thread count and network width in ``$STST_HOME/precision.json``.
CPUs without native bf16 (most laptops, desktops and older cloud machines) use
fp32 without measuring: emulated bf16 is always slower there.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch

from .devices import cpu_name
from .fileio import atomic_path
from .home import stst_home

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
CALIBRATION_FILE = "precision.json"
# bf16 changes the output slightly (0.24 grey levels on average), so it must pay clearly.
BF16_MIN_SPEEDUP = 1.1
CALIBRATION_SIZE = 256

Measure = Callable[[torch.nn.Module, "torch.dtype | None"], float]


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check and check())


def machine_key(model: torch.nn.Module) -> str:
    """What the measurement depends on: CPU, torch version, threads and the network's width."""
    width = getattr(getattr(model, "config", None), "channels", "?")
    return f"{cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads | width {width}"


def median_seconds(model: torch.nn.Module, dtype: torch.dtype | None, runs: int = 3) -> float:
    """Median forward time of one 256x256 image on the CPU, after a warm-up run."""
    x = torch.rand(1, 3, CALIBRATION_SIZE, CALIBRATION_SIZE)
    times = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for i in range(runs + 1):
            start = time.perf_counter()
            model(x)
            if i:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def auto_precision(device: torch.device, model: torch.nn.Module, measure: Measure = median_seconds) -> str:
    """``fp16`` on CUDA; on CPUs, ``bf16`` only where it measured at least 1.1x faster than fp32; else ``fp32``."""
    if device.type == "cuda":
        return "fp16"
    if device.type != "cpu" or not cpu_has_bf16():
        return "fp32"
    cache = stst_home() / CALIBRATION_FILE
    try:
        known = json.loads(cache.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    key = machine_key(model)
    if isinstance(known.get(key), dict) and known[key].get("precision") in ("fp32", "bf16"):
        return known[key]["precision"]
    fp32, bf16 = measure(model, None), measure(model, torch.bfloat16)
    choice = "bf16" if fp32 >= BF16_MIN_SPEEDUP * bf16 else "fp32"
    known[key] = {"precision": choice, "fp32_seconds": round(fp32, 4), "bf16_seconds": round(bf16, 4),
                  "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(known, indent=1))
    except OSError:  # a read-only cache only means measuring again next time
        pass
    return choice

"""The automatic engine and precision on CPUs, chosen by what measures faster on the machine at hand.

A CPU flag is not enough: bf16 autocast ran 1.7x faster than fp32 on an AMD
EPYC with AVX512-BF16, but 1.2x slower on an Intel Xeon with AVX512-BF16 and
no AMX; ONNX Runtime ran 1.55x faster than eager fp32 on an AMD EPYC with AVX2
only. And the size matters: on one machine ONNX Runtime and eager fp32 tied at
256x256 while ONNX Runtime was 1.32x faster at 768x512. So the candidates that
can run here are timed on the model at hand at the size at hand (the nearest
of :data:`SIZE_BUCKETS`), interleaved, round after round until the choice has
stopped changing (one far behind is timed no more), each by its fastest round (a busy machine only ever adds
time: on a 2-core Xeon the realtime network's ONNX Runtime graph took 0.17 s
in one measurement and a median of 0.24 s in the next), and the answer is
cached per CPU, library versions, thread count, network width, set of
candidates and size in ``$STST_HOME/precision.json`` (``stst info --engines``
prints it). A candidate must beat the first (the
reference, eager fp32) by its margin: bf16 and int8 change the output slightly
(bf16 0.24 grey levels on average; int8 at most 1.5, checked per model by
:mod:`stst.infer.int8`), so they must pay clearly; ONNX Runtime's fp32 output
equals eager fp32 within 2e-6. For runs of photos that the express lane
(:mod:`stst.infer.express`) could serve next time, a torch engine other than
the reference must also beat every ONNX Runtime candidate by
:data:`LANE_SECONDS` an image: choosing it keeps those runs off the lane, and
each of them then imports torch (1.6-3 s). On a 2-core Xeon with AMX, bf16
ran the realtime network in 0.085 s against ONNX Runtime's 0.119, and 24
photos took 8.9 s through it against 4.9 s through the lane.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch

from ..base.cores import default_batch
from ..base.machine import cpu_name, installed, package_version
from ..base.errors import StstError
from ..base.home import read_record, stst_home, write_record
from ..model import GRAPH_FORM
from .measuring import Decision
from .sizes import SIZE_BUCKETS

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
CALIBRATION_FILE = "precision.json"
# How much faster than the reference a candidate must measure to be chosen.
MARGINS = {"torch-bf16": 1.1, "onnxruntime-fp32": 1.05, "onnxruntime-int8": 1.1, "openvino-fp32": 1.05,
           "openvino-bf16": 1.1}
# Seconds an image by which a torch engine other than the reference must beat every exported graph's (ONNX Runtime,
# OpenVINO) where the express lane could serve the run: importing torch (about 2.4 s) spread over 24 photos.
LANE_SECONDS = 0.1
# Rounds of interleaved timings: at least MIN_ROUNDS, until the choice is the same after STABLE_ROUNDS
# rounds in a row, at most MAX_ROUNDS (or fewer once BUDGET_SECONDS are spent).
MIN_ROUNDS, STABLE_ROUNDS, MAX_ROUNDS, BUDGET_SECONDS = 2, 2, 9, 12.0
# A candidate whose fastest round, margin applied, takes more than this many times the best one's is timed no
# more, and once one candidate is left the measurement ends: six candidates met the full model at 768x512 on a
# 2-core Xeon, OpenVINO bf16 2.2x ahead of the next, and timing them took 31 s of the first photo's 49. Only a
# slow spell that more than doubles one timing could drop a candidate that would have won.
BEHIND = 2.0

log = logging.getLogger(__name__)  # the CLI shows its messages as notes on stderr

Runner = Callable[[torch.Tensor], object]
Measure = Callable[[Runner, tuple[int, int]], float]


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check and check())


def machine_prefix() -> str:
    """What every measurement here depends on: CPU, library versions and threads."""
    try:
        import onnxruntime

        libraries = f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"
    except ImportError:
        libraries = f"torch {torch.__version__}"
    if installed("openvino"):
        libraries += f", openvino {package_version('openvino')}"
    return f"{cpu_name()} | {libraries}, graph form {GRAPH_FORM} | {torch.get_num_threads()} threads"


def machine_key(width: object, candidates: list[str], size: tuple[int, int], lane: bool = False) -> str:
    """The cache key of one measurement: the machine, the network's width, the candidates, the size and whether
    the express lane counts."""
    return (f"{machine_prefix()} | width {width} | {', '.join(candidates)} | {size[0]}x{size[1]}, "
            f"batches of {default_batch()}" + (" | express lane" if lane else ""))


def time_once(runner: Runner, size: tuple[int, int]) -> float:
    """Seconds an image of ``size`` takes through ``runner``, timed on a batch of
    :func:`stst.base.cores.default_batch` images: what runs of photos and clips hand the engines on CPUs, where
    ONNX Runtime runs a batch side by side and torch one image after another. On one image at a time, a 2-core Xeon
    chose torch bf16 for the realtime tier's clips at 8.6 frames/s end to end, where ONNX Runtime side by side gave
    9.2-11.6."""
    images = default_batch()
    x = torch.rand(images, 3, *size)
    start = time.perf_counter()
    runner(x)
    return (time.perf_counter() - start) / images


def _costs(names: list[str], seconds: dict[str, float]) -> dict[str, float]:
    """Each candidate's seconds times its margin (the reference, first, has none)."""
    return {name: seconds[name] * (MARGINS.get(name, 1.0) if name != names[0] else 1.0) for name in names}


def _choice(names: list[str], seconds: dict[str, float], lane: bool = False) -> str:
    """The fastest candidate once the margins are applied (the reference, first, has none); with ``lane``, a
    torch engine other than the reference only where it beats every graph engine (which the lane runs) by
    :data:`LANE_SECONDS`."""
    def lane_runs(name: str) -> bool:
        return name == names[0] or not name.startswith("torch-")

    cost = _costs(names, seconds).get
    choice = min(names, key=cost)
    graphs = [seconds[name] for name in names if name != names[0] and lane_runs(name)] if lane else []
    if not lane_runs(choice) and any(seconds[choice] + LANE_SECONDS > g for g in graphs):
        choice = min(filter(lane_runs, names), key=cost)
    return choice


def _contenders(names: list[str], seconds: dict[str, float]) -> list[str]:
    """The candidates still worth timing: within :data:`BEHIND` of the best, margins applied."""
    cost = _costs(names, seconds)
    best = min(cost.values())
    return [name for name in names if cost[name] <= BEHIND * best]


def measure_candidates(runners: dict[str, Runner], size: tuple[int, int], measure: Measure = time_once,
                       lane: bool = False) -> tuple[str, dict[str, float], int]:
    """``(choice, fastest seconds by name, rounds)``: each runner is warmed up once, then timed in rounds.

    Every round times each runner still in contention (:func:`_contenders`) once, starting with a different one
    each round, so that a slow spell of the machine hits all of them; each one's fastest round decides. It stops
    when one is left, or when the choice has been the same for :data:`STABLE_ROUNDS` rounds in a row (after at
    least :data:`MIN_ROUNDS`).
    """
    names = list(runners)
    for runner in runners.values():
        measure(runner, size)
    samples: dict[str, list[float]] = {name: [] for name in names}
    choices: list[str] = []
    spent = 0.0
    timed = names
    for round_ in range(MAX_ROUNDS):
        for i in range(len(timed)):
            name = timed[(round_ + i) % len(timed)]
            samples[name].append(measure(runners[name], size))
            spent += samples[name][-1]
        fastest_rounds = {name: min(times) for name, times in samples.items()}
        choices.append(_choice(names, fastest_rounds, lane))
        timed = [name for name in _contenders(names, fastest_rounds) if name in timed]
        stable = len(choices) >= STABLE_ROUNDS and len(set(choices[-STABLE_ROUNDS:])) == 1
        if len(timed) == 1 or (round_ + 1 >= MIN_ROUNDS and (stable or spent > BUDGET_SECONDS)):
            break
    return choices[-1], fastest_rounds, len(choices)


def _built(candidates: dict[str, Callable[[], Runner]]) -> dict[str, Runner]:
    """The candidates' runners; one other than the reference that cannot be set up (e.g. its ONNX
    graph cannot be written) is left out, so that ``auto`` still runs."""
    runners = {}
    for i, (name, build) in enumerate(candidates.items()):
        try:
            runners[name] = build()
        except StstError:
            if i == 0:
                raise
    return runners


def decide(width: object, candidates: dict[str, Callable[[], Runner]], size: tuple[int, int] = SIZE_BUCKETS[0],
           measure: Measure = time_once, lane: bool = False) -> Decision:
    """The candidate to use at ``size``, measured once per machine and size, and cached; and why.

    ``candidates`` maps names to functions that build a runner; the first is
    the reference. With a single candidate nothing is measured. ``lane``: the
    run is one the express lane could serve next time (see :func:`_choice`).
    """
    names = list(candidates)
    if len(names) == 1:
        return Decision(names[0], "forced")
    known = read_record(CALIBRATION_FILE)
    key = machine_key(width, names, size, lane)
    if isinstance(known.get(key), dict) and known[key].get("choice") in names:
        return Decision(known[key]["choice"], "cached")
    log.info("timing %d engines for this network at %dx%d, once on this machine (stst info --engines shows the "
             "choice)", len(names), size[1], size[0])
    runners = _built(candidates)
    if len(runners) < len(names):  # measured without a candidate that could not be set up: not cached
        left = measure_candidates(runners, size, measure, lane)[0] if len(runners) > 1 else next(iter(runners))
        return Decision(left, "measured")
    choice, seconds, rounds = measure_candidates(runners, size, measure, lane)
    known[key] = {"choice": choice, "seconds": {n: round(s, 4) for n, s in seconds.items()}, "rounds": rounds,
                  "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_record(CALIBRATION_FILE, known)
    return Decision(choice, "measured")


def measured_here() -> dict[str, dict]:
    """The cached measurements of this machine (CPU, libraries, threads), by the rest of their key."""
    prefix = machine_prefix() + " | "
    return {key[len(prefix):]: value for key, value in read_record(CALIBRATION_FILE).items()
            if key.startswith(prefix) and isinstance(value, dict)}


def describe_measurements(measured: dict[str, dict]) -> list[str]:
    """``stst info --engines``: one line per measured network width and size, fastest first."""
    if not measured:
        return [f"no engine measured yet on this machine ({machine_prefix()}); the first stylization measures"]
    lines = [f"measured on {machine_prefix()} (in {stst_home() / CALIBRATION_FILE}):"]
    for key, entry in sorted(measured.items()):
        seconds = entry.get("seconds", {})
        times = ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in sorted(seconds.items(), key=lambda kv: kv[1]))
        lines.append(f"  {key}: chose {entry.get('choice')} ({times}; {entry.get('rounds', '?')} rounds, "
                     f"{entry.get('measured', '?')})")
    return lines

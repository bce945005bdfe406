"""The engine a network runs with on a CPU: the fastest of the candidates, timed on the model at hand at the
size at hand, once per machine (a CPU flag is not enough; docs/engine-choice.md has the measurements).

Candidates are timed in interleaved rounds until the choice stops changing, each by its fastest round (a busy
machine only adds time); one must beat the reference (eager fp32) by its margin in the engine table
(:mod:`stst.infer.engines`), and where the express lane could serve the run, a torch engine must also beat every
graph engine by :data:`LANE_SECONDS` an image (the lane saves importing torch). The answer is cached under the
machine's fingerprint (:mod:`stst.infer.caches`); ``stst info --engines`` prints it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch

from ..base.cores import default_batch
from ..base.errors import StstError
from ..base.home import stst_home
from .caches import CHOICES_FILE, fingerprint, here, read_record, write_record
from .engines import engine
from .measuring import Decision
from .sizes import SIZE_BUCKETS

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


def machine_key(width: object, candidates: list[str], size: tuple[int, int], lane: bool = False) -> str:
    """The cache key of one measurement: the machine, the network's width, the candidates, the size and whether
    the express lane counts."""
    return (f"{fingerprint()} | width {width} | {', '.join(candidates)} | {size[0]}x{size[1]}, "
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
    return {name: seconds[name] * (engine(name).margin if name != names[0] else 1.0) for name in names}


def _choice(names: list[str], seconds: dict[str, float], lane: bool = False) -> str:
    """The fastest candidate once the margins are applied (the reference, first, has none); with ``lane``, a
    torch engine other than the reference only where it beats every graph engine (which the lane runs) by
    :data:`LANE_SECONDS`."""
    def lane_runs(name: str) -> bool:
        return name == names[0] or engine(name).torch_free

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
    known = read_record(CHOICES_FILE)
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
    write_record(CHOICES_FILE, known)
    return Decision(choice, "measured")


def measured_here() -> dict[str, dict]:
    """The cached measurements of this machine, by the rest of their key."""
    return {key: value for key, value in here(CHOICES_FILE).items() if isinstance(value, dict)}


def describe_measurements(measured: dict[str, dict]) -> list[str]:
    """``stst info --engines``: one line per measured network width and size, fastest first."""
    if not measured:
        return [f"no engine measured yet on this machine ({fingerprint()}); the first stylization measures"]
    lines = [f"measured on {fingerprint()} (in {stst_home() / CHOICES_FILE}):"]
    for key, entry in sorted(measured.items()):
        seconds = entry.get("seconds", {})
        times = ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in sorted(seconds.items(), key=lambda kv: kv[1]))
        lines.append(f"  {key}: chose {entry.get('choice')} ({times}; {entry.get('rounds', '?')} rounds, "
                     f"{entry.get('measured', '?')})")
    return lines

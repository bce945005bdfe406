"""The engine a network runs with on a CPU: the fastest of the candidates, timed on the model at hand at the
size at hand, once per machine (a CPU flag is not enough; docs/engine-choice.md has the measurements).

Candidates are timed in interleaved rounds until the choice stops changing, each by its fastest round (a busy
machine only adds time); one must beat the reference (eager fp32) by its margin in the engine table
(:mod:`stst.infer.engines`), and where the express lane could serve the run, a torch engine must also beat every
graph engine by :data:`LANE_SECONDS` an image (the lane saves importing torch). The answer is cached under the
machine's fingerprint (:mod:`stst.infer.caches`); ``stst info --engines`` prints it. Torch is imported only to
time on random images: the express lane times graph engines on a run's photos without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..base.cores import default_batch
from ..base.errors import StstError
from ..base.home import stst_home
from ..base.machine import native_bf16
from .caches import CHOICES_FILE, fingerprint, here, read_record, write_record
from .engines import engine
from .measuring import Decision
from .sizes import SIZE_BUCKETS

# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA) below AVX512_CORE_BF16, under which it runs no bf16 natively.
ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
# Seconds an image by which a torch engine other than the reference must beat every exported graph's (ONNX Runtime,
# OpenVINO) where the express lane could serve the run: importing torch (about 2.4 s) spread over 24 photos.
LANE_SECONDS = 0.1
# Rounds of interleaved timings: at least MIN_ROUNDS, until the choice is the same after STABLE_ROUNDS
# rounds in a row, at most MAX_ROUNDS (or fewer once BUDGET_SECONDS are spent).
MIN_ROUNDS, STABLE_ROUNDS, MAX_ROUNDS, BUDGET_SECONDS = 2, 2, 9, 12.0
# A run of photos times its engines on its own batches (Trial.clear): there one round ends the timing where the
# runner-up, margins applied, takes at least this many times the best one's (timings only ever come out slow, so a
# lead that wide is not noise): 24 photos are 12 batches, and five candidates with warm-ups took 11 in two rounds.
CLEAR_LEAD = 1.5
# ... and from the second round on, where each contender's fastest is of two samples or more, a lead this wide ends
# it: the full network's trial on the Kodak folder needs 13 batches where the first round is not decisive (OpenVINO
# bf16 and int8 1.4-1.6x apart), and with a third round it went on into the next run (8.4-8.7 s against 6.9 steady).
LATER_LEAD = 1.2
# A batch that an engine compiling each size (OpenVINO) runs right after a compile is a warm-up in a run's timing on
# its own photos while the engine has no sample yet: its output stands, its time does not count. OpenVINO's first
# inference of a new compile took 0.36 s for a 768x512 photo of the full int8 graph where the next took 0.20 (2 Zen 4
# cores), and one such sample as an engine's only one (the second size of a folder of landscapes and portraits) let a
# trial that one round ended (CLEAR_LEAD) choose OpenVINO bf16 over int8 for good: 9.7 s a run of 24 photos instead
# of 6.6. Once it has a sample the batch counts (the fastest sample decides), and so does its WARM_UPS + 1st in a
# row: a run whose sizes do not repeat pays that first inference on every photo.
WARM_UPS = 2
# A candidate whose fastest round, margin applied, takes more than this many times the best one's is timed no
# more, and once one candidate is left the measurement ends: six candidates met the full model at 768x512 on a
# 2-core Xeon, OpenVINO bf16 2.2x ahead of the next, and timing them took 31 s of the first photo's 49. Only a
# slow spell that more than doubles one timing could drop a candidate that would have won.
BEHIND = 2.0

log = logging.getLogger(__name__)  # the CLI shows its messages as notes on stderr

Runner = Callable[[Any], object]  # a batch in (a tensor or an array), its stylized images out
Measure = Callable[[Runner, tuple[int, int]], float]


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); emulated bf16 is slower than fp32. torch's own
    check says yes for any AVX-512 CPU (an Ice Lake Xeon emulates bf16), so an x86 CPU's flags must name native bf16
    too, and ``ONEDNN_MAX_CPU_ISA`` must not hold oneDNN below it (the AVX2 stand-in of docs/performance.md)."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ISAS_WITHOUT_BF16
    return bool(check and check()) and native_bf16() is not False and not capped


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
    import torch

    images = default_batch()
    with torch.inference_mode():  # as a run's batches come (a compiled candidate tells them apart)
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


def _spare(names: list[str], seconds: dict[str, float], lane: bool) -> str:
    """The fastest of the timed candidates that do not compile each size ("" if none was timed)."""
    whole = [name for name in names if name in seconds and not engine(name).per_size]
    return _choice(whole, seconds, lane) if whole else ""


def _contenders(names: list[str], seconds: dict[str, float]) -> list[str]:
    """The candidates still worth timing: within :data:`BEHIND` of the best, margins applied."""
    cost = _costs(names, seconds)
    best = min(cost.values())
    return [name for name in names if cost[name] <= BEHIND * best]


@dataclass
class Trial:
    """The timing of candidates in interleaved rounds, one sample at a time, as the work comes: the rounds of
    :func:`time_candidates`, and of a run of photos that times its engines on its own batches (whose outputs
    stand: every candidate's output is within its margin of fp32's), a round spread over several batches.

    Every round times each candidate still in contention (:func:`_contenders`) once, starting with a different one
    each round, so that a slow spell of the machine hits all of them; each one's fastest sample decides. It ends
    when one is left, or when the choice has been the same for :data:`STABLE_ROUNDS` rounds in a row (after at
    least :data:`MIN_ROUNDS`), or the budget is spent. It is plain data, so that a run that ends before its trial
    does leaves it in the record for the next run to go on with.
    """

    names: list[str]  # the reference first
    lane: bool = False
    samples: dict[str, list[float]] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)  # the choice after each round
    timed: list[str] = field(default_factory=list)  # the candidates still in contention
    queue: list[str] = field(default_factory=list)  # this round's candidates still to time
    spent: float = 0.0
    clear: float = 0.0  # a lead (CLEAR_LEAD) with which one round ends it (LATER_LEAD: a later one); 0: none

    def __post_init__(self) -> None:
        self.timed = [name for name in self.timed if name in self.names] or list(self.names)
        self.queue = [name for name in self.queue if name in self.timed] or (list(self.timed) if not self.choices
                                                                              else self._rotated())

    @property
    def done(self) -> bool:
        return not self.queue

    @property
    def choice(self) -> str:
        return self.choices[-1]

    def next(self) -> str:
        """The candidate to time next."""
        return self.queue[0]

    def add(self, name: str, seconds: float) -> None:
        """A sample of ``name``: ``seconds`` an image."""
        self.samples.setdefault(name, []).append(seconds)
        self.spent += seconds
        self.queue.remove(name)
        if not self.queue:
            self._end_round()

    def drop(self, name: str) -> None:
        """Leave out a candidate that failed (it could not be set up, or compile for a size); not the reference."""
        self.names = [n for n in self.names if n != name]
        self.timed = [n for n in self.timed if n != name]
        self.samples.pop(name, None)
        self.queue = [n for n in self.queue if n != name]
        if not self.queue:
            self._end_round()

    @property
    def spare(self) -> str:
        """Where the choice compiles each size: the fastest candidate that does not (for sizes that do not repeat)."""
        return _spare(self.names, self.fastest(), self.lane) if engine(self.choice).per_size else ""

    def fastest(self) -> dict[str, float]:
        return {name: min(times) for name, times in self.samples.items() if name in self.names}

    def _rotated(self) -> list[str]:
        shift = len(self.choices) % len(self.timed)
        return self.timed[shift:] + self.timed[:shift]

    def _end_round(self) -> None:
        fastest = self.fastest()
        names = [name for name in self.names if name in fastest]
        self.choices.append(_choice(names, fastest, self.lane))
        self.timed = [name for name in _contenders(names, fastest) if name in self.timed]
        stable = len(self.choices) >= STABLE_ROUNDS and len(set(self.choices[-STABLE_ROUNDS:])) == 1
        rounds = len(self.choices)
        costs = sorted(_costs(names, fastest).values())
        lead = self.clear if rounds == 1 else min(self.clear, LATER_LEAD)
        clear = bool(self.clear) and len(costs) > 1 and costs[1] >= lead * costs[0]
        finished = len(self.timed) == 1 or rounds >= MAX_ROUNDS or clear or (
            rounds >= MIN_ROUNDS and (stable or self.spent > BUDGET_SECONDS))
        self.queue = [] if finished else self._rotated()


def time_on_batch(trial: Trial, name: str, set_up: Callable[[], Runner], batch: Any, warmed: Counter[str]) -> object:
    """``batch`` (images of one size) stylized by candidate ``name`` of ``trial`` and timed for it, as a run of photos
    times its engines (its outputs stand); None where the candidate cannot be set up or run here (a
    :class:`StstError`: it is left out; the reference's is raised, as in a run that does not time).

    ``set_up()`` gives the runner. One that compiles each size (a ``prepare`` method) compiles first, untimed, and a
    batch right after a compile, while the candidate has no sample yet, is a warm-up (:data:`WARM_UPS`; ``warmed``
    counts them per engine): its time does not count, and the candidate's turn goes on with the next batch.
    """
    try:
        runner = set_up()
        prepare = getattr(runner, "prepare", None)
        fresh = prepare is not None and prepare(len(batch), *batch.shape[-2:])
        warm_up = fresh and name not in trial.samples and warmed[name] < WARM_UPS
        start = time.perf_counter()
        out = runner(batch)
    except StstError as exc:
        if name == trial.names[0]:
            raise
        log.debug("engine %s left out: %s", name, exc)
        trial.drop(name)
        return None
    if warm_up:
        warmed[name] += 1
    else:
        trial.add(name, (time.perf_counter() - start) / len(batch))
    return out


def time_candidates(candidates: dict[str, Callable[[], Runner]], size: tuple[int, int], measure: Measure,
                    lane: bool, hold: bool = True) -> Trial:
    """The trial of ``candidates`` on random images of ``size``, each built and warmed up when first timed. With
    ``hold``, each is kept for the rounds after; without, it is built and warmed up for every round and let go
    after, so that one engine at a time holds its memory (seven held 3.6 GB at once for the full network at
    768x512 on 2 Zen 4 cores, ONNX Runtime int8 1.7 GB of it). A candidate other than the first that cannot be set
    up or run here (a :class:`StstError`) is left out."""
    held: dict[str, Runner] = {}

    def ready(name: str) -> Runner:
        if name in held:
            return held[name]
        runner = candidates[name]()
        measure(runner, size)  # the warm-up
        if hold:
            held[name] = runner
        return runner

    trial = Trial(list(candidates), lane)
    while not trial.done:
        name = trial.next()
        try:
            runner = ready(name)
        except StstError:
            if name == trial.names[0]:
                raise
            trial.drop(name)
            continue
        trial.add(name, measure(runner, size))
        del runner
    return trial


def cached_choice(width: object, names: list[str], size: tuple[int, int], lane: bool = False) -> Decision | None:
    """The choice measured here before for this network width, these candidates and this size, if any."""
    known = read_record(CHOICES_FILE).get(machine_key(width, names, size, lane))
    if not isinstance(known, dict) or known.get("choice") not in names:
        return None
    return Decision(known["choice"], "cached", known["spare"] if known.get("spare") in names else "")


def trial_of(width: object, names: list[str], size: tuple[int, int], lane: bool = False, clear: float = 0.0) -> Trial:
    """The trial an earlier run began and did not finish for these candidates here (see :func:`record_trial`),
    else a new one (``clear``: see :class:`Trial`)."""
    known = read_record(CHOICES_FILE).get(machine_key(width, names, size, lane))
    begun = known.get("trial") if isinstance(known, dict) else None
    if isinstance(begun, dict):
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            trial = Trial(names=list(names), lane=lane, **{k: v for k, v in begun.items()
                                                           if k not in ("names", "lane", "clear")}, clear=clear)
            if all(isinstance(v, list) and v and all(isinstance(t, float) for t in v) for v in trial.samples.values()):
                return trial
    return Trial(list(names), lane, clear=clear)


def begin_trial(width: object, names: list[str], size: tuple[int, int], lane: bool) -> Trial:
    """The trial of a run of photos on its own batches (:func:`trial_of`, with :data:`CLEAR_LEAD`), said once."""
    trial = trial_of(width, names, size, lane, clear=CLEAR_LEAD)
    if not trial.samples:  # not when it goes on with a trial an earlier run began
        log.info("timing %d engines on this run's photos near %dx%d, once on this machine (stst info --engines "
                 "shows the choice)", len(names), size[1], size[0])
    return trial


def record_trial(width: object, names: list[str], size: tuple[int, int], trial: Trial) -> None:
    """Write ``trial`` to the record under the key of ``names`` (the candidates it began with): its choice once
    it is done, else how far it got."""
    known = read_record(CHOICES_FILE)
    key = machine_key(width, names, size, trial.lane)
    if trial.done:
        known[key] = {"choice": trial.choice, "spare": trial.spare,
                      "seconds": {n: round(s, 4) for n, s in trial.fastest().items()},
                      "rounds": len(trial.choices), "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    else:
        known[key] = {"trial": {k: v for k, v in asdict(trial).items() if k not in ("names", "lane", "clear")}}
    write_record(CHOICES_FILE, known)


def decide(width: object, candidates: dict[str, Callable[[], Runner]], size: tuple[int, int] = SIZE_BUCKETS[0],
           measure: Measure = time_once, lane: bool = False, hold: bool = True) -> Decision:
    """The candidate to use at ``size``, measured once per machine and size, and cached; and why.

    ``candidates`` maps names to functions that build a runner; the first is
    the reference. With a single candidate nothing is measured. ``lane``: the
    run is one the express lane could serve next time (see :func:`_choice`). ``hold``: keep each candidate
    while they are timed (see :func:`time_candidates`). A measurement that left out a candidate that could not be
    set up is not cached: it is made again, with it, next time.
    """
    names = list(candidates)
    if len(names) == 1:
        return Decision(names[0], "forced")
    known = cached_choice(width, names, size, lane)
    if known is not None:
        return known
    log.info("timing %d engines for this network at %dx%d, once on this machine (stst info --engines shows the "
             "choice)", len(names), size[1], size[0])
    trial = time_candidates(candidates, size, measure, lane, hold)
    if trial.names == names:  # all of them timed
        record_trial(width, names, size, trial)
    return Decision(trial.choice, "measured", trial.spare)


def measured_here() -> dict[str, dict]:
    """The cached measurements of this machine, by the rest of their key."""
    return {key: value for key, value in here(CHOICES_FILE).items() if isinstance(value, dict)}


def describe_measurements(measured: dict[str, dict]) -> list[str]:
    """``stst info --engines``: one line per measured network width and size, fastest first."""
    if not measured:
        return [f"no engine measured yet on this machine ({fingerprint()}); the first stylization measures"]
    lines = [f"measured on {fingerprint()} (in {stst_home() / CHOICES_FILE}):"]
    for key, entry in sorted(measured.items()):
        if "trial" in entry:
            lines.append(f"  {key}: being timed on runs of photos (left for the next run)")
            continue
        seconds = entry.get("seconds", {})
        times = ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in sorted(seconds.items(), key=lambda kv: kv[1]))
        lines.append(f"  {key}: chose {entry.get('choice')} ({times}; {entry.get('rounds', '?')} rounds, "
                     f"{entry.get('measured', '?')})")
    return lines

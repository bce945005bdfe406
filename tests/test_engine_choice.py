"""The automatic engine and precision follow measurement, not a CPU flag alone, and are measured once per machine."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from stst.infer import choice, engine, measuring
from stst.infer.measuring import Decision
from stst.infer.engine import Stylizer, choose_engine
from stst.base.errors import StstError
from stst.infer.caches import CHOICES_FILE
from stst.infer.choice import MAX_ROUNDS, MIN_ROUNDS, STABLE_ROUNDS, decide, machine_key, time_candidates, time_once
from stst.infer.sizes import size_bucket

from stst.model.checkpoint import save_checkpoint
from stst.model.network import ArchConfig

from conftest import PHOTOS, fresh_network


def fake_timer(seconds: dict[str, float], calls: list, jitter: float = 0.0, seed: int = 0):
    """A measure() that reports ``seconds`` by candidate name (the built runner is the name), each
    timing off by up to ``jitter`` (a share, uniformly at random) as on a noisy machine."""
    rng = random.Random(seed)

    def measure(runner, size):
        calls.append((runner, size))
        return seconds[runner] * (1 + rng.uniform(-jitter, jitter))
    return measure


def named(*names: str) -> dict:
    return {name: (lambda n=name: n) for name in names}


def measure_candidates(runners: dict, size: tuple[int, int], measure, lane: bool = False) -> tuple:
    """``(choice, fastest seconds by name, rounds)`` of built ``runners`` timed on random images."""
    trial = time_candidates({name: (lambda r=runner: r) for name, runner in runners.items()}, size, measure, lane)
    return trial.choice, trial.fastest(), len(trial.choices)


def timed_calls(calls: list) -> list[str]:
    """The candidates timed, in order, without each one's first call (its warm-up)."""
    seen: set[str] = set()
    return [name for name, _ in calls if name in seen or seen.add(name)]


def test_a_candidate_must_beat_the_reference_by_its_margin_and_the_answer_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    calls = []
    # a Xeon with AVX512-BF16 but no AMX: bf16 slower, so fp32
    candidates = named("torch-fp32", "torch-bf16")
    assert decide(32, candidates, measure=fake_timer({"torch-fp32": 2.86, "torch-bf16": 3.34}, calls)).engine == "torch-fp32"
    measured = len(calls)
    assert measured >= 2 * (1 + MIN_ROUNDS)  # a warm-up, then rounds of both
    assert decide(32, candidates, measure=fake_timer({"torch-fp32": 1.0, "torch-bf16": 0.1}, calls)).engine == "torch-fp32"
    assert len(calls) == measured  # cached
    saved = json.loads((tmp_path / CHOICES_FILE).read_text())[machine_key(32, list(candidates), (256, 256))]
    assert saved["choice"] == "torch-fp32" and saved["seconds"]["torch-bf16"] == 3.34
    (tmp_path / CHOICES_FILE).unlink()
    # the AMD EPYC case; then bf16 only 1.05x faster: within its 1.1x margin, so not chosen
    assert decide(32, candidates, measure=fake_timer({"torch-fp32": 0.707, "torch-bf16": 0.419}, calls)).engine == "torch-bf16"
    assert decide(16, candidates, measure=fake_timer({"torch-fp32": 1.05, "torch-bf16": 1.0}, calls)).engine == "torch-fp32"
    # ONNX Runtime 1.55x faster on an AVX2-only CPU
    three = named("torch-fp32", "torch-bf16", "onnxruntime-fp32")
    timer = fake_timer({"torch-fp32": 1.97, "torch-bf16": 2.5, "onnxruntime-fp32": 1.27}, calls)
    assert decide(32, three, measure=timer).engine == "onnxruntime-fp32"


def test_each_size_bucket_is_measured_at_its_own_size(tmp_path, monkeypatch):
    """The measured case: a tie at 256x256, ONNX Runtime 1.32x faster at 768x512."""
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    timings = {(256, 256): {"torch-fp32": 0.1842, "onnxruntime-fp32": 0.1800},
               (512, 768): {"torch-fp32": 1.32, "onnxruntime-fp32": 1.0}}
    calls = []

    def measure(runner, size):
        calls.append(size)
        return timings[size][runner]
    candidates = named("torch-fp32", "onnxruntime-fp32")
    assert [size_bucket(*hw) for hw in [(64, 64), (256, 256), (300, 400), (480, 640), (512, 768), (4000, 6000)]] == [
        (256, 256), (256, 256), (384, 512), (512, 768), (512, 768), (512, 768)]
    assert decide(32, candidates, (256, 256), measure).engine == "torch-fp32"
    assert decide(32, candidates, (512, 768), measure).engine == "onnxruntime-fp32"
    assert set(calls) == {(256, 256), (512, 768)}
    assert decide(32, candidates, (256, 256), measure).engine == "torch-fp32"  # each cached under its size


@pytest.mark.parametrize("truth, lane, expected", [
    ({"torch-fp32": 1.0, "onnxruntime-fp32": 1 / 1.32}, False, "onnxruntime-fp32"),  # clearly faster: always chosen
    ({"torch-fp32": 1.0, "onnxruntime-fp32": 1.03}, False, "torch-fp32"),  # a little slower: never chosen
    ({"torch-fp32": 1.0, "torch-bf16": 1 / 1.7, "onnxruntime-fp32": 1 / 1.3}, False, "torch-bf16"),
    ({"torch-fp32": 1.0, "torch-bf16": 1.2, "onnxruntime-fp32": 1.1}, False, "torch-fp32"),
    # the realtime tier on a Xeon with AMX: bf16 1.4x faster than ONNX Runtime, by 34 ms an image; for a run
    # of photos the express lane saves more (torch is not imported), for clips or a server it does not
    ({"torch-fp32": 0.18, "torch-bf16": 0.085, "onnxruntime-fp32": 0.119}, False, "torch-bf16"),
    ({"torch-fp32": 0.18, "torch-bf16": 0.085, "onnxruntime-fp32": 0.119}, True, "onnxruntime-fp32"),
    ({"torch-fp32": 1.0, "torch-bf16": 0.5, "onnxruntime-fp32": 0.8, "onnxruntime-int8": 0.55}, True,
     "onnxruntime-int8"),
    ({"torch-fp32": 1.0, "torch-bf16": 0.5, "onnxruntime-fp32": 0.65}, True, "torch-bf16"),  # 0.15 s: bf16
])
def test_a_3_percent_jitter_cannot_flip_the_choice(truth, lane, expected):
    for seed in range(200):
        calls = []
        choice, medians, rounds = measure_candidates(dict(zip(truth, truth)), (256, 256),
                                                     fake_timer(truth, calls, jitter=0.03, seed=seed), lane)
        assert choice == expected, (seed, medians)
        assert MIN_ROUNDS <= rounds <= MAX_ROUNDS


def test_a_slow_spell_of_the_machine_does_not_count_against_the_candidate_it_hits():
    """ONNX Runtime 0.17 s, but 0.30 s every other round in a busy spell; eager fp32 0.20 s."""
    spells = {"onnxruntime-fp32": iter([0.17, 0.17, 0.30, 0.17, 0.30, 0.17, 0.30, 0.17, 0.30, 0.17])}

    def measure(runner, size):
        return next(spells[runner]) if runner in spells else 0.20
    names = ["torch-fp32", "onnxruntime-fp32"]
    choice, seconds, _ = measure_candidates(dict(zip(names, names)), (512, 768), measure)
    assert choice == "onnxruntime-fp32" and seconds["onnxruntime-fp32"] == 0.17


def test_timings_are_interleaved_and_stop_once_the_choice_is_stable():
    calls = []
    truth = {"torch-fp32": 1.0, "torch-bf16": 0.5, "onnxruntime-fp32": 0.8}
    choice, _, rounds = measure_candidates(dict(zip(truth, truth)), (256, 256), fake_timer(truth, calls))
    assert choice == "torch-bf16" and rounds == max(MIN_ROUNDS, STABLE_ROUNDS)
    order = timed_calls(calls)  # after the warm-ups, each round starts with the next candidate
    assert order[:6] == ["torch-fp32", "torch-bf16", "onnxruntime-fp32", "torch-bf16", "onnxruntime-fp32", "torch-fp32"]


def test_a_candidate_far_behind_is_timed_no_more_and_the_last_one_left_ends_it():
    """The full model at 768x512 on a 2-core Xeon with AMX: OpenVINO bf16 2.2x ahead of ONNX Runtime int8."""
    calls = []
    truth = {"torch-fp32": 1.56, "torch-bf16": 1.107, "onnxruntime-fp32": 0.955, "onnxruntime-int8": 0.637,
             "openvino-fp32": 0.784, "openvino-bf16": 0.285}
    choice, seconds, rounds = measure_candidates(dict(zip(truth, truth)), (512, 768), fake_timer(truth, calls))
    assert (choice, rounds, seconds) == ("openvino-bf16", 1, truth)
    assert len(calls) == 2 * len(truth)  # a warm-up and one round each
    # within 2x of the best (margins applied) a candidate is timed in every round; beyond, in the first only
    calls.clear()
    truth = {"torch-fp32": 1.0, "torch-bf16": 0.4, "onnxruntime-fp32": 0.8}  # costs 1.0, 0.44, 0.84
    choice, _, rounds = measure_candidates(dict(zip(truth, truth)), (512, 768), fake_timer(truth, calls))
    timed = timed_calls(calls)
    assert choice == "torch-bf16" and rounds == max(MIN_ROUNDS, STABLE_ROUNDS)
    assert (timed.count("torch-fp32"), timed.count("torch-bf16"), timed.count("onnxruntime-fp32")) == (1, 2, 2)


def test_a_lean_measurement_holds_one_engine_at_a_time(tmp_path, monkeypatch):
    """The server's (hold=False): every round builds and warms up each candidate anew and lets it go after, so that
    its peak memory is one engine's; the same choice as when they are held."""
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    truth = {"torch-fp32": 1.0, "torch-bf16": 0.5, "onnxruntime-fp32": 0.8}
    alive, built, live = [], [], []

    class Engine:
        def __init__(self, name: str) -> None:
            self.name = name
            alive.append(name)
            built.append(name)

        def __del__(self) -> None:
            alive.remove(self.name)

    def measure(runner, size):
        live.append(len(alive))
        return truth[runner.name]
    engines = {name: (lambda n=name: Engine(n)) for name in truth}
    assert decide(32, engines, measure=measure, hold=False).engine == "torch-bf16"
    assert max(live) == 1 and alive == [] and built.count("torch-bf16") == max(MIN_ROUNDS, STABLE_ROUNDS)
    (tmp_path / CHOICES_FILE).unlink()
    built.clear()
    assert decide(32, engines, measure=measure).engine == "torch-bf16" and sorted(built) == sorted(truth)


def test_a_candidate_that_cannot_be_set_up_is_left_out(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))

    def unwritable():
        raise StstError("cannot write the ONNX graph")
    candidates = {**named("torch-fp32", "torch-bf16"), "onnxruntime-fp32": unwritable}
    timer = fake_timer({"torch-fp32": 1.0, "torch-bf16": 0.5}, [])
    assert decide(32, candidates, measure=timer).engine == "torch-bf16"
    assert not (tmp_path / CHOICES_FILE).exists()  # measured again, with it, next time


def test_a_single_candidate_is_not_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    calls = []
    assert decide(32, named("torch-fp32"), measure=fake_timer({}, calls)).engine == "torch-fp32"
    assert calls == [] and not (tmp_path / CHOICES_FILE).exists()


def test_an_unwritable_cache_still_gives_an_answer(monkeypatch, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    monkeypatch.setenv("STST_HOME", str(blocker / "home"))
    timer = fake_timer({"torch-fp32": 1.0, "torch-bf16": 0.5}, [])
    assert decide(32, named("torch-fp32", "torch-bf16"), measure=timer).engine == "torch-bf16"


def test_candidates_follow_the_machine_and_the_options(monkeypatch):
    seen = []
    monkeypatch.setattr(engine, "decide", lambda width, candidates, size, measure=None, lane=False, hold=True:
                        seen.append(list(candidates)) or Decision(next(iter(candidates)), "measured"))
    cpu, net = torch.device("cpu"), fresh_network()
    ov = ["openvino-fp32", "openvino-bf16"]
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: False)
    choose_engine(cpu, net)
    # no native bf16: never emulated bf16
    assert seen[-1] == ["torch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-int8"]
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: True)
    choose_engine(cpu, net)
    assert seen[-1] == ["torch-fp32", "torch-bf16", "onnxruntime-fp32", "onnxruntime-int8", *ov, "openvino-int8"]
    choose_engine(cpu, net, precision="fp32")
    # --precision fp32 still gets the fastest fp32 engine
    assert seen[-1] == ["torch-fp32", "onnxruntime-fp32", "openvino-fp32"]
    choose_engine(cpu, net, precision="bf16")
    assert seen[-1] == ["torch-bf16", "openvino-bf16"]
    choose_engine(cpu, net, backend="openvino")
    assert seen[-1] == ov
    assert choose_engine(cpu, net, backend="openvino", precision="fp32") == ("openvino", "fp32")
    assert choose_engine(cpu, net, backend="openvino", precision="int8") == ("openvino", "int8")
    choose_engine(cpu, net, precision="int8")
    assert seen[-1] == ["onnxruntime-int8", "openvino-int8"]
    with pytest.raises(StstError, match="runs"):
        choose_engine(cpu, net, backend="openvino", precision="fp16")
    monkeypatch.setattr(engine, "_faithful_int8", lambda model: None)  # a model int8 cannot follow
    choose_engine(cpu, net)
    assert seen[-1] == ["torch-fp32", "torch-bf16", "onnxruntime-fp32", *ov]
    choose_engine(cpu, net, backend="torch")
    assert seen[-1] == ["torch-fp32", "torch-bf16"]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    monkeypatch.setitem(sys.modules, "openvino", None)
    choose_engine(cpu, net)
    assert seen[-1] == ["torch-fp32", "torch-bf16"]
    assert choose_engine(cpu, net, precision="bf16") == ("torch", "bf16")
    with pytest.raises(StstError, match="needs the package 'openvino'"):
        choose_engine(cpu, net, backend="openvino")


def test_the_onnxruntime_engine_gives_the_torch_output_and_caches_its_graph(stst_home):
    net, x = fresh_network(3), torch.rand(2, 3, 37, 53)
    reference = Stylizer(net, "cpu", precision="fp32", backend="torch", tile=None)(x)
    ort = Stylizer(net, "cpu", backend="onnxruntime", tile=None)
    assert (ort.backend, ort.precision) == ("onnxruntime", "fp32")
    assert (ort(x) - reference).abs().max() < 1e-4
    graphs = sorted((stst_home / "onnx").glob("*.onnx"))
    Stylizer(net, "cpu", backend="onnxruntime", tile=None)
    assert sorted((stst_home / "onnx").glob("*.onnx")) == graphs  # exported once


def test_the_real_measurement_times_a_runner():
    assert 0 < time_once(engine.TorchRunner(fresh_network(), None, torch.device("cpu")), (64, 96)) < 30


def test_engines_are_timed_per_image_on_the_batches_runs_hand_them(monkeypatch):
    """One image per core at a time, as runs of photos and clips batch them; torch candidates run it image by
    image, as the Stylizer does on CPUs."""
    import time

    import stst.infer.choice as choice

    monkeypatch.setattr(choice, "default_batch", lambda: 3)
    shapes = []
    assert 0.09 < time_once(lambda x: (shapes.append(tuple(x.shape)), time.sleep(0.1 * len(x))), (20, 30)) < 0.2
    assert shapes == [(3, 3, 20, 30)]
    net, seen = fresh_network(2), []
    net.conv1.register_forward_hook(lambda _module, inputs, _output: seen.append(len(inputs[0])))
    x = torch.rand(3, 3, 24, 32)
    assert (engine.TorchRunner(net, None, torch.device("cpu"))(x) - net(x)).abs().max().item() < 1e-4 and seen == [1, 1, 1, 3]
    assert machine_key(16, ["torch-fp32"], (256, 256)).endswith("| 256x256, batches of 3")


def test_the_stylizer_chooses_per_size_on_first_use(monkeypatch):
    """Nothing is measured until a batch comes; then once per size bucket, at that bucket."""
    asked = []

    def choose(width, candidates, size, measure=None, lane=False, hold=True):
        asked.append(size)
        return Decision("onnxruntime-fp32" if size == (384, 512) else "torch-fp32", "measured")
    monkeypatch.setattr(engine, "decide", choose)
    stylizer = Stylizer(fresh_network(1), "cpu", precision="fp32", tile=None)  # fp32: no int8 graph to make
    assert asked == [] and stylizer.backend is None
    small = stylizer(torch.rand(1, 3, 40, 60))
    assert (stylizer.backend, asked) == ("torch", [(256, 256)])
    large = stylizer(torch.rand(1, 3, 300, 400))
    assert (stylizer.backend, asked) == ("onnxruntime", [(256, 256), (384, 512)])
    stylizer(torch.rand(2, 3, 48, 48))
    assert (stylizer.backend, len(asked)) == ("torch", 2)  # known bucket: not asked again
    assert small.shape == (1, 3, 40, 60) and large.shape == (1, 3, 300, 400)


def test_the_first_timing_is_told_on_stderr_once(tmp_path, monkeypatch):
    """The first photo waits while the engines are timed: the user is told why, once, and never on stdout (which
    may carry a photo)."""
    from click.testing import CliRunner

    from stst.cli import main

    monkeypatch.setenv("STST_HOME", str(tmp_path))
    monkeypatch.setattr(measuring, "MEASURE_FROM", 1)  # a run of one photo measures
    model = tmp_path / "small.pth"
    save_checkpoint(model, fresh_network(config=ArchConfig(channels=8)))
    runs = [CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), "-m", str(model), "--precision", "fp32",
                                      "-o", str(tmp_path / f"{i}.png")]) for i in range(2)]
    assert [run.exit_code for run in runs] == [0, 0]
    notes = [line for line in runs[0].stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: timing 2 engines on this run's photos near 256x256, once on this machine (stst info "
                     "--engines shows the choice)"]  # the graph engines: eager fp32's output is ONNX Runtime's
    assert "note:" not in runs[0].stdout + runs[1].stdout + runs[1].stderr


def test_info_engines_shows_what_was_measured_and_chosen(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from stst.cli import main

    monkeypatch.setenv("STST_HOME", str(tmp_path))
    runner = CliRunner()
    first = runner.invoke(main, ["info", "--engines"])
    assert first.exit_code == 0 and "no engine measured yet" in first.output
    decide(32, named("torch-fp32", "torch-bf16"), (512, 768), fake_timer({"torch-fp32": 0.5, "torch-bf16": 0.25}, []))
    shown = runner.invoke(main, ["info", "--engines"])
    assert shown.exit_code == 0
    [line] = [line for line in shown.output.splitlines() if "512x768" in line]
    rounds = max(MIN_ROUNDS, STABLE_ROUNDS)
    assert "width 32" in line and f"chose torch-bf16 (torch-bf16 250 ms, torch-fp32 500 ms; {rounds} rounds" in line
    missing = runner.invoke(main, ["info"])
    assert missing.exit_code == 2 and "give a MODEL" in missing.output


def counted_measurements(monkeypatch) -> list:
    """The sizes at which engines get timed from now on (the real timing still runs)."""
    sizes = []
    real = choice.time_candidates

    def counting(candidates, size, *args, **kwargs):
        sizes.append(size)
        return real(candidates, size, *args, **kwargs)

    monkeypatch.setattr(choice, "time_candidates", counting)
    return sizes


def test_a_folder_times_the_engines_on_its_own_photos_once_it_has_met_the_model(tmp_path, monkeypatch):
    """The second run of a folder times its engines on its own batches (no images of their own), and their
    outputs stand: each fp32 engine's photo equals eager fp32's within a grey level. A run that ends before the
    timing does leaves it to the next, which goes on with it; then nothing more is timed."""
    from click.testing import CliRunner

    from stst.cli import main

    monkeypatch.setenv("STST_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(measuring, "MEASURE_AGAIN_FROM", 5)
    timed = counted_measurements(monkeypatch)
    model = tmp_path / "small.pth"
    save_checkpoint(model, fresh_network(config=ArchConfig(channels=8)))
    record = tmp_path / "home" / CHOICES_FILE
    names = ["onnxruntime-fp32", "openvino-fp32"]  # the graph engines (the express lane runs them without torch)
    key = machine_key(ArchConfig(channels=8).tag, names, (256, 256), lane=True)

    def folder(out: str, *extra: str) -> None:
        run = CliRunner().invoke(main, ["stylize", str(PHOTOS), "-m", str(model), "--precision", "fp32", "-o",
                                        f"{tmp_path / out}/", *extra])
        assert run.exit_code == 0 and "5 stylized" in run.stdout, run.output

    folder("reference", "--backend", "torch")
    folder("first")
    assert not record.exists()  # first met: the sound engine, untimed
    runs = 1
    while not record.exists() or "choice" not in json.loads(record.read_text()).get(key, {}):
        folder(f"run{runs}")
        entry = json.loads(record.read_text())[key]
        timed_so_far = set(entry["seconds"] if "choice" in entry else entry["trial"]["samples"])
        assert names[0] in timed_so_far <= set(names)  # OpenVINO's batches right after its compiles: warm-ups
        runs += 1
        assert runs < 6
    assert timed == []  # never on images of its own
    for run in range(1, runs):
        for photo in (tmp_path / "reference").iterdir():
            got = np.asarray(Image.open(tmp_path / f"run{run}" / photo.name), dtype=np.int16)
            assert np.abs(got - np.asarray(Image.open(photo), dtype=np.int16)).max() <= 1
    Image.open(PHOTOS / "kodim23.jpg").resize((600, 400)).save(tmp_path / "larger.png")
    one = CliRunner().invoke(main, ["stylize", str(tmp_path / "larger.png"), "-m", str(model), "--precision", "fp32",
                                    "-o", str(tmp_path / "one.png")])
    assert one.exit_code == 0 and timed == []  # one photo of a size not timed yet: nothing timed
    decide(8, named("torch-fp32", "torch-bf16"), (512, 768), fake_timer({"torch-fp32": 1.0, "torch-bf16": 0.5}, []))
    assert timed == [(512, 768)]  # what is counted: a timing on random images


def test_a_trial_times_each_contender_once_a_round_and_leaves_the_slow_ones():
    seconds = {"torch-fp32": 1.0, "torch-bf16": 0.9, "onnxruntime-fp32": 0.45, "openvino-int8": 0.3}
    trial = choice.Trial(list(seconds), lane=True)
    order = []
    while not trial.done:
        order.append(trial.next())
        trial.add(order[-1], seconds[order[-1]])
    # round 1: all four; then only those within BEHIND of the best (margins applied): int8 0.33, ORT fp32 0.47
    assert order[:4] == list(seconds) and sorted(order[4:6]) == ["onnxruntime-fp32", "openvino-int8"]
    assert trial.choice == "openvino-int8" and len(trial.choices) == max(MIN_ROUNDS, STABLE_ROUNDS)
    assert order[4] != order[6 % len(order)] or len(order) == 6  # each round starts with another candidate
    failing = choice.Trial(["torch-fp32", "openvino-fp32", "onnxruntime-fp32"])
    failing.add(failing.next(), 1.0)
    failing.drop("openvino-fp32")  # could not compile here
    failing.add(failing.next(), 0.5)
    assert failing.names == ["torch-fp32", "onnxruntime-fp32"] and failing.choices == ["onnxruntime-fp32"]


def test_an_unfinished_trial_is_recorded_and_goes_on_and_a_broken_record_starts_anew(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    names = ["torch-fp32", "onnxruntime-fp32"]
    trial = choice.Trial(names, lane=True)
    trial.add(trial.next(), 1.0)
    choice.record_trial(16, names, (256, 256), trial)
    again = choice.trial_of(16, names, (256, 256), lane=True)
    assert again.samples == {"torch-fp32": [1.0]} and again.next() == "onnxruntime-fp32"
    assert choice.cached_choice(16, names, (256, 256), lane=True) is None
    assert choice.trial_of(16, names, (256, 256)).samples == {}  # another key: not the express lane's
    known = json.loads((tmp_path / CHOICES_FILE).read_text())
    for broken in ({"samples": {"torch-fp32": "fast"}}, {"samples": 3}, {"unknown": 1}, "x"):
        [key] = known
        (tmp_path / CHOICES_FILE).write_text(json.dumps({key: {"trial": broken}}))
        assert choice.trial_of(16, names, (256, 256), lane=True).samples == {}
    while not again.done:
        again.add(again.next(), 0.5 if again.next() == "onnxruntime-fp32" else 1.0)
    choice.record_trial(16, names, (256, 256), again)
    assert choice.cached_choice(16, names, (256, 256), lane=True) == Decision("onnxruntime-fp32", "cached")


def test_a_candidate_that_cannot_run_here_is_left_out_and_the_batch_runs_on_another(stst_home, monkeypatch):
    """OpenVINO's CPU plugin refused to compile under ONEDNN_MAX_CPU_ISA=AVX2: a trial leaves it out and the batch
    still comes out, on the next candidate."""
    from stst.infer import openvino_graph

    def refuse(self, images, height, width):
        raise StstError("OpenVINO cannot compile this here")
    monkeypatch.setattr(openvino_graph.OpenVinoGraph, "prepare", refuse)
    routes = []
    net = fresh_network(4)
    stylizer = Stylizer(net, "cpu", precision="fp32", tile=None, route=lambda *args: routes.append(args[:2]))
    x = torch.rand(2, 3, 40, 56)
    reference = Stylizer(net, "cpu", precision="fp32", backend="torch", tile=None)(x)
    for _ in range(8):
        assert (stylizer(x) - reference).abs().max() < 1e-4
    assert routes == [((256, 256), "onnxruntime-fp32")]  # the one left
    saved = json.loads((stst_home / CHOICES_FILE).read_text())
    entry = saved[machine_key(net.config.tag, ["onnxruntime-fp32", "openvino-fp32"], (256, 256), lane=True)]
    assert entry["choice"] == "onnxruntime-fp32" and set(entry["seconds"]) == {"onnxruntime-fp32"}


@pytest.mark.parametrize("names, start", [(["torch-fp32", "torch-bf16", "onnxruntime-fp32"], "onnxruntime-fp32"),
                                          (["torch-fp32", "torch-bf16"], "torch-fp32"),
                                          (["torch-bf16", "openvino-bf16"], "torch-bf16")])
def test_an_unmeasured_run_starts_on_onnx_runtime_fp32_else_the_reference(names, start):
    assert measuring.sound(names) == start
    assert not measuring.measures(measuring.MEASURE_FROM - 1) and measuring.measures(measuring.MEASURE_FROM)
    assert measuring.measures(measuring.MEASURE_AGAIN_FROM, seen=True)
    assert not measuring.measures(measuring.MEASURE_AGAIN_FROM - 1, seen=True)
    assert measuring.measures(None)  # clips and the server


def test_a_fresh_home_runs_the_example_without_timing_engines_and_verbose_says_why(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from stst.cli import main
    from stst.infer.caches import ROUTES_FILE

    monkeypatch.setenv("STST_HOME", str(tmp_path / "home"))
    timed = counted_measurements(monkeypatch)
    runs = [CliRunner().invoke(main, ["stylize", "--example", "-v", "-o", str(tmp_path / f"{i}.jpg")]) for i in range(2)]
    assert [run.exit_code for run in runs] == [0, 0], runs[0].output
    assert runs[0].stdout.strip() == f"wrote {tmp_path / '0.jpg'}"
    assert timed == [] and not (tmp_path / "home" / CHOICES_FILE).exists()
    [(key, routes)] = json.loads((tmp_path / "home" / ROUTES_FILE).read_text()).items()
    assert key.endswith("| unmeasured") and [route[0] for route in routes.values()] == ["onnxruntime-fp32"]
    notes = [[line for line in run.stderr.splitlines() if line.startswith("note:")] for run in runs]
    assert notes[0] == ["note: engine for images near 768x512: onnxruntime-fp32 (not timed yet: a first run of "
                        f"fewer than {measuring.MEASURE_FROM} photos starts on it)"]  # nothing waited for
    assert notes[1] == ["note: engine for images near 768x512: onnxruntime-fp32 (recorded by an earlier run for this "
                        "model and request: runs without torch)"]
    forced = CliRunner().invoke(main, ["stylize", "--example", "--backend", "torch", "--precision", "fp32", "-v",
                                        "-o", str(tmp_path / "t.jpg")])  # torch-bf16 too on a CPU with native bf16
    assert "note: engine for images near 768x512: torch-fp32 (the only one the device, --precision and --backend " \
           "leave)" in forced.stderr
    quiet = CliRunner().invoke(main, ["stylize", "--example", "-o", str(tmp_path / "q.jpg")])
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr


def test_an_unmeasured_run_falls_back_to_the_reference_where_the_sound_engine_cannot_be_set_up():
    stylizer = Stylizer(fresh_network(1), "cpu", precision="fp32", tile=None, measure=False)
    assert list(stylizer.candidates)[:2] == ["torch-fp32", "onnxruntime-fp32"]

    def unwritable():
        raise StstError("cannot write the ONNX graph")

    stylizer.candidates["onnxruntime-fp32"] = unwritable
    assert stylizer(torch.rand(1, 3, 40, 60)).shape == (1, 3, 40, 60) and stylizer.backend == "torch"


def test_a_run_of_photos_of_sizes_met_once_runs_them_on_the_engine_that_does_not_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    names = ["onnxruntime-fp32", "openvino-fp32"]
    trial = choice.Trial(names, lane=True)
    while not trial.done:
        trial.add(trial.next(), {"onnxruntime-fp32": 0.6, "openvino-fp32": 0.3}[trial.next()])
    assert (trial.choice, trial.spare) == ("openvino-fp32", "onnxruntime-fp32")
    net = fresh_network(4, config=ArchConfig(channels=8))
    choice.record_trial(net.config.tag, names, (256, 256), trial)
    routes = []
    stylizer = Stylizer(net, "cpu", precision="fp32", tile=None, route=lambda *args: routes.append(args))
    engines = []
    for height in (200, 201, 202, 200):
        stylizer(torch.rand(1, 3, height, 240))
        engines.append(stylizer.backend)
    assert engines == ["openvino", "onnxruntime", "onnxruntime", "openvino"]  # the first size, then 200 again
    [(bucket, engine_name, graph, _, spare)] = routes
    assert (engine_name, spare) == ("openvino-fp32", ("onnxruntime-fp32", graph))


def test_the_server_times_its_engines_one_at_a_time(stst_home):
    """Its peak memory under load is bounded (2.5 GB): the measurement holds one engine at a time there."""
    from stst.model.bundled import bundled_models
    from stst.serve.workers import ModelWorkers

    workers = ModelWorkers(torch.device("cpu"))
    assert workers._stylizer(bundled_models()["starry_night-realtime"]).lean


def test_a_clear_lead_ends_a_trial_on_a_runs_photos_after_one_round():
    """Timings only come out slow: a runner-up 1.5x behind after a round (margins applied) cannot be the faster."""
    seconds = {"onnxruntime-fp32": 0.7, "onnxruntime-int8": 0.4, "openvino-int8": 0.2}
    for clear, rounds in [(choice.CLEAR_LEAD, 1), (0.0, max(MIN_ROUNDS, STABLE_ROUNDS))]:
        trial = choice.Trial(list(seconds), lane=True, clear=clear)
        while not trial.done:
            trial.add(trial.next(), seconds[trial.next()])
        assert (trial.choice, len(trial.choices)) == ("openvino-int8", rounds)
    close = choice.Trial(["onnxruntime-fp32", "openvino-bf16", "openvino-int8"], clear=choice.CLEAR_LEAD)
    for name, took in [("onnxruntime-fp32", 0.7), ("openvino-bf16", 0.3), ("openvino-int8", 0.25)]:
        close.add(name, took)
    assert not close.done  # 1.2x: another round
    while close.queue:  # a second round: each contender's fastest of two samples
        close.add(close.next(), {"openvino-bf16": 0.31, "openvino-int8": 0.24}[close.next()])
    assert close.done and close.choice == "openvino-int8"  # 1.25x after two rounds: done (LATER_LEAD)
    near = choice.Trial(["onnxruntime-fp32", "openvino-bf16", "openvino-int8"], clear=choice.CLEAR_LEAD)
    for took in [(0.7, 0.3, 0.28), (0.3, 0.27), (0.29, 0.28)]:
        for value in took:
            near.add(near.next(), value)
    assert near.done and len(near.choices) == 3  # 1.04x: until the choice has held for two rounds


def test_a_batch_right_after_a_compile_is_a_warm_up_until_the_engine_has_a_sample():
    """A per-size engine's batch right after a compile runs (its output stands) untimed while the engine has no
    sample, its turn going on with the next batch: OpenVINO's first inference after a compile is the slower. Once it
    has one, such batches count (the fastest sample decides); and the third compile in a row without one counts: a
    run whose sizes do not repeat pays that first inference on every photo."""
    from collections import Counter

    class PerSize:
        def __init__(self) -> None:
            self.sizes: set[tuple[int, int]] = set()

        def prepare(self, images: int, height: int, width: int) -> bool:
            fresh = (height, width) not in self.sizes
            self.sizes.add((height, width))
            return fresh

        def __call__(self, batch: np.ndarray) -> np.ndarray:
            return batch

    def counted(heights: tuple[int, ...]) -> tuple[list[bool], Counter]:
        runner, warmed = PerSize(), Counter()
        trial = choice.Trial(["onnxruntime-fp32", "openvino-int8"], lane=True)
        trial.add("onnxruntime-fp32", 1.0)
        taken = []
        for height in heights:
            batch = np.zeros((2, 3, height, 300), np.float32)
            before = len(trial.samples.get("openvino-int8", []))
            assert choice.time_on_batch(trial, "openvino-int8", lambda: runner, batch, warmed) is batch  # it stands
            taken.append(len(trial.samples.get("openvino-int8", [])) > before)
            trial.queue = ["openvino-int8"]  # its turn again (the rounds are another test's)
        return taken, warmed

    assert counted((200, 200, 210, 210, 220)) == ([False, True, True, True, True], {"openvino-int8": 1})
    assert counted((300, 310, 320, 330)) == ([False, False, True, True], {"openvino-int8": choice.WARM_UPS})

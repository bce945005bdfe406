"""The automatic engine and precision follow measurement, not a CPU flag alone, and are measured once per machine."""

from __future__ import annotations

import json
import sys

import torch

from stst.infer import engine
from stst.infer.engine import Stylizer, choose_engine
from stst.infer.precision import CALIBRATION_FILE, fastest, machine_key, median_seconds

from conftest import fresh_network


def fake_timer(seconds: dict[str, float], calls: list):
    """A measure() that reports ``seconds`` by candidate name (the built runner is the name)."""
    def measure(runner):
        calls.append(runner)
        return seconds[runner]
    return measure


def named(*names: str) -> dict:
    return {name: (lambda n=name: n) for name in names}


def test_a_candidate_must_beat_the_reference_by_its_margin_and_the_answer_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    calls = []
    # a Xeon with AVX512-BF16 but no AMX: bf16 slower, so fp32
    candidates = named("torch-fp32", "torch-bf16")
    assert fastest(32, candidates, fake_timer({"torch-fp32": 2.86, "torch-bf16": 3.34}, calls)) == "torch-fp32"
    assert len(calls) == 2
    assert fastest(32, candidates, fake_timer({"torch-fp32": 1.0, "torch-bf16": 0.1}, calls)) == "torch-fp32"  # cached
    assert len(calls) == 2
    saved = json.loads((tmp_path / CALIBRATION_FILE).read_text())[machine_key(32, list(candidates))]
    assert saved["choice"] == "torch-fp32" and saved["seconds"]["torch-bf16"] == 3.34
    (tmp_path / CALIBRATION_FILE).unlink()
    # the AMD EPYC case; then bf16 only 1.05x faster: within its 1.1x margin, so not chosen
    assert fastest(32, candidates, fake_timer({"torch-fp32": 0.707, "torch-bf16": 0.419}, calls)) == "torch-bf16"
    assert fastest(16, candidates, fake_timer({"torch-fp32": 1.05, "torch-bf16": 1.0}, calls)) == "torch-fp32"
    # ONNX Runtime 1.55x faster on an AVX2-only CPU
    three = named("torch-fp32", "torch-bf16", "onnxruntime-fp32")
    timer = fake_timer({"torch-fp32": 1.97, "torch-bf16": 2.5, "onnxruntime-fp32": 1.27}, calls)
    assert fastest(32, three, timer) == "onnxruntime-fp32"


def test_a_single_candidate_is_not_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    calls = []
    assert fastest(32, named("torch-fp32"), fake_timer({}, calls)) == "torch-fp32"
    assert calls == [] and not (tmp_path / CALIBRATION_FILE).exists()


def test_an_unwritable_cache_still_gives_an_answer(monkeypatch, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    monkeypatch.setenv("STST_HOME", str(blocker / "home"))
    timer = fake_timer({"torch-fp32": 1.0, "torch-bf16": 0.5}, [])
    assert fastest(32, named("torch-fp32", "torch-bf16"), timer) == "torch-bf16"


def test_candidates_follow_the_machine_and_the_options(monkeypatch):
    seen = []
    monkeypatch.setattr(engine, "fastest", lambda width, candidates: seen.append(list(candidates)) or "torch-fp32")
    cpu, net = torch.device("cpu"), fresh_network()
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: False)
    choose_engine(cpu, net)
    assert seen[-1] == ["torch-fp32", "onnxruntime-fp32"]  # no native bf16: never emulated bf16
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: True)
    choose_engine(cpu, net)
    assert seen[-1] == ["torch-fp32", "torch-bf16", "onnxruntime-fp32"]
    choose_engine(cpu, net, precision="fp32")
    assert seen[-1] == ["torch-fp32", "onnxruntime-fp32"]  # --precision fp32 still gets the fastest fp32 engine
    choose_engine(cpu, net, backend="torch")
    assert seen[-1] == ["torch-fp32", "torch-bf16"]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    choose_engine(cpu, net)
    assert seen[-1] == ["torch-fp32", "torch-bf16"]
    assert choose_engine(cpu, net, precision="bf16") == ("torch", "bf16")


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
    assert 0 < median_seconds(engine._torch_runner(fresh_network(), None), runs=1) < 30

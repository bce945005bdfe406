"""The automatic precision follows measurement, not the CPU flag alone, and is measured once per machine."""

from __future__ import annotations

import json

import torch

from stst import precision
from stst.precision import CALIBRATION_FILE, auto_precision, machine_key, median_seconds

from conftest import fresh_network


def fake_timer(fp32: float, bf16: float, calls: list):
    def measure(model, dtype):
        calls.append(dtype)
        return bf16 if dtype is torch.bfloat16 else fp32
    return measure


def test_bf16_is_chosen_only_where_it_measures_faster_and_the_answer_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    net, cpu = fresh_network(), torch.device("cpu")
    calls = []
    # a Xeon with AVX512-BF16 but no AMX: bf16 slower, so fp32
    assert auto_precision(cpu, net, fake_timer(fp32=2.86, bf16=3.34, calls=calls)) == "fp32"
    assert len(calls) == 2
    assert auto_precision(cpu, net, fake_timer(fp32=1.0, bf16=0.1, calls=calls)) == "fp32"  # cached: not measured
    assert len(calls) == 2
    saved = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert saved[machine_key(net)]["precision"] == "fp32" and saved[machine_key(net)]["bf16_seconds"] == 3.34
    (tmp_path / CALIBRATION_FILE).unlink()
    assert auto_precision(cpu, net, fake_timer(fp32=0.707, bf16=0.419, calls=calls)) == "bf16"  # the AMD EPYC case


def test_no_native_bf16_means_fp32_without_measuring(monkeypatch, tmp_path):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    calls = []
    assert auto_precision(torch.device("cpu"), fresh_network(), fake_timer(1.0, 0.1, calls)) == "fp32"
    assert calls == [] and not (tmp_path / CALIBRATION_FILE).exists()


def test_an_unwritable_cache_still_gives_an_answer(monkeypatch, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    monkeypatch.setenv("STST_HOME", str(blocker / "home"))
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert auto_precision(torch.device("cpu"), fresh_network(), fake_timer(1.0, 0.5, [])) == "bf16"


def test_the_real_measurement_times_both_precisions():
    net = fresh_network()
    assert 0 < median_seconds(net, None, runs=1) < 30

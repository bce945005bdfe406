"""Several images at once on CPUs: one image per core, each on one thread, the same pixels as one at a time."""

import threading
import time

import numpy as np
import torch
from PIL import Image

import stst.base.cores as cores
import stst.infer.choice as choice
import stst.infer.sizes
from stst.base.cores import default_batch, side_by_side
from stst.base.machine import (NATIVE_BF16_FLAGS, VECTOR_FLAGS, cpu_cores, cpu_flags, cpu_name, describe_cpu,
                               native_bf16)
from stst.infer.onnxruntime_graph import GraphRunner
from stst.infer.caches import cached_graph
from stst.model.bundled import resolve_model
from stst.model.checkpoint import load_model
from stst.stylize import JobSettings, plan_jobs, run_jobs

from conftest import PHOTOS


def busy(log: list, lock: threading.Lock, running: list):
    """A task that notes how many tasks run beside it and on which thread."""

    def run(item: int) -> int:
        with lock:
            running[0] += 1
            log.append((running[0], threading.get_ident()))
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return item * item

    return run


def test_side_by_side_keeps_the_order_and_runs_one_item_per_core(monkeypatch):
    monkeypatch.setattr(cores, "cpu_cores", lambda: 2)
    log, lock = [], threading.Lock()
    assert side_by_side(busy(log, lock, [0]), range(5)) == [0, 1, 4, 9, 16]
    assert max(n for n, _ in log) == 2  # two at a time, never three
    assert threading.get_ident() not in {thread for _, thread in log}
    monkeypatch.setattr(cores, "cpu_cores", lambda: 1)
    log.clear()
    assert side_by_side(busy(log, lock, [0]), [3]) == [9]
    assert log == [(1, threading.get_ident())]  # one core: in the caller's thread


def test_a_graph_runs_a_batch_one_image_per_core_on_one_thread_each():
    runner = GraphRunner(cached_graph(load_model(resolve_model("udnie", "realtime")[0])[0]))
    batch = np.random.default_rng(0).random((3, 3, 40, 56), dtype=np.float32)
    together = runner(batch)
    assert runner._single is not None and runner._single.get_session_options().intra_op_num_threads == 1
    alone = np.concatenate([runner(image[None]) for image in batch])
    assert together.shape == batch.shape and np.abs(together - alone).max() < 1e-5
    assert np.abs(together[0] - together[1]).max() > 0.1  # each image its own output


def test_photos_of_equal_size_go_one_per_core_by_default_and_tiled_ones_alone(tmp_path, monkeypatch):
    assert JobSettings().batch_size == default_batch() == min(cores.cpu_cores(), 4)
    src = tmp_path / "in"
    src.mkdir()
    sizes = [(64, 48), (64, 48), (64, 48), (80, 60), (64, 48), (64, 48)]
    for i, size in enumerate(sizes):
        Image.open(PHOTOS / "kodim01.jpg").resize(size).save(src / f"p{i}.png")
    seen = []

    def network(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return 1 - batch

    monkeypatch.setitem(stst.infer.sizes.AUTO_PIXELS, "johnson", 70 * 50)  # the 80x60 photo would run in tiles
    report = run_jobs(network, plan_jobs([src], "neg", tmp_path / "out", False, None), JobSettings(batch_size=2),
                      progress=False)
    assert len(report.stylized) == 6 and not report.failed
    assert sorted(seen) == sorted([(2, 3, 48, 64), (1, 3, 60, 80), (2, 3, 48, 64), (1, 3, 48, 64)])
    first = np.asarray(Image.open(tmp_path / "out" / "p0-neg.png"), dtype=np.int16)
    assert np.abs(first - (255 - np.asarray(Image.open(src / "p0.png"), dtype=np.int16))).max() <= 1


def test_benchmarks_name_the_cpu_its_vector_extensions_and_whether_it_has_native_bf16():
    line = describe_cpu()
    assert line.startswith(f"CPU: {cpu_name()} (") and line.endswith(f", {cpu_cores()} cores")
    assert set(cpu_flags()) <= set(VECTOR_FLAGS)
    assert ("; native bf16)" in line) == bool(set(NATIVE_BF16_FLAGS) & set(cpu_flags()))


def test_bf16_counts_as_native_only_where_the_cpu_runs_it_so(monkeypatch):
    """torch's oneDNN check says yes for every AVX-512 CPU, an Ice Lake Xeon (AVX-512, no AVX512-BF16) included,
    where bf16 is emulated and slower than fp32: the engines then offer no bf16 of their own accord."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    onednn = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert choice.cpu_has_bf16() == (onednn and native_bf16() is not False)
    if native_bf16() is not None:  # x86 Linux: the flags decide where oneDNN says yes
        assert not choice.cpu_has_bf16() or bool(set(NATIVE_BF16_FLAGS) & set(cpu_flags()))
    monkeypatch.setattr(choice, "native_bf16", lambda: False)
    assert not choice.cpu_has_bf16()
    monkeypatch.setattr(choice, "native_bf16", lambda: True)
    assert choice.cpu_has_bf16() == onednn
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # the AVX2 stand-in
    assert not choice.cpu_has_bf16()

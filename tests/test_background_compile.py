"""A compiled engine never makes a run wait: each kind of batch compiles in a thread while the eager network runs
(stst.infer.compiled), a GPU's choice waits for the compile with the reference running, and a command line that
ends first hands the compile to a process of its own, which leaves it in the cache for the next run. Tested on the
CPU with torch.compile's real machinery and a backend that compiles when told to (inductor itself compiles for a GPU
only in this project), and once with real inductor compiling for the CPU."""

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch

from stst.infer.choice import describe_measurements, measured_here
from stst.infer.compiled import Compiled, compiling
from stst.infer.engine import Stylizer, TorchRunner
from stst.infer.sizes import size_bucket
from stst.model.network import ArchConfig, TransformerNet

from conftest import fresh_network


class HeldBackend:
    """A torch.compile backend that compiles once ``release`` is set, and counts the graphs it compiled and the
    batches that then ran compiled; ``fail``: it raises instead."""

    def __init__(self, fail: bool = False) -> None:
        self.release, self.fail = threading.Event(), fail
        self.graphs, self.runs = 0, 0

    def __call__(self, graph: torch.fx.GraphModule, inputs: list) -> object:
        assert self.release.wait(30)
        if self.fail:
            raise RuntimeError("no compiler here")
        self.graphs += 1

        def run(*args):
            self.runs += 1
            return graph.forward(*args)

        return run


def small_network() -> torch.nn.Module:
    """Layers of the network's kinds, quick to trace."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.ReflectionPad2d(1), torch.nn.Conv2d(3, 4, 3), torch.nn.InstanceNorm2d(4),
                               torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1)).eval()


@pytest.fixture
def backend():
    held = HeldBackend()
    yield held
    held.release.set()  # no compile thread outlives the test


@torch.inference_mode()
def test_batches_run_eager_until_their_compile_ends_then_compiled(backend):
    net = small_network()
    compiled = Compiled(net, backend=backend)
    x = torch.rand(4, 3, 32, 48)
    start = time.perf_counter()
    assert torch.equal(compiled(x), net(x))  # eager, the compile held
    assert time.perf_counter() - start < 5 and not compiled.build(x).done() and backend.runs == 0
    backend.release.set()
    assert compiled.build(x).exception(timeout=30) is None
    assert backend.runs == 1  # the compile's own sample
    assert torch.allclose(compiled(x), net(x), atol=1e-6) and backend.runs == 2
    compiled(x[:3])  # another batch size: the same compile, its batch dynamic
    assert (backend.graphs, backend.runs) == (1, 3)
    compiled(x[:1])  # a batch of one is a kind of its own: eager while it compiles
    compiled.build(x[:1]).exception(timeout=30)
    compiled(x[:1])
    assert (backend.graphs, backend.runs) == (2, 5)  # 3, a sample, a batch of one


@torch.inference_mode()
def test_a_failed_compile_leaves_its_batches_eager(caplog):
    caplog.set_level(logging.INFO, logger="stst.infer.compiled")
    net, held = small_network(), HeldBackend(fail=True)
    held.release.set()
    compiled = Compiled(net, backend=held)
    x = torch.rand(2, 3, 32, 32)
    assert isinstance(compiled.build(x).exception(timeout=30), Exception)
    assert torch.equal(compiled(x), net(x))
    assert "torch.compile failed for 32x32 images in batches (they run eager): no compiler here" in caplog.text


def test_a_compiled_candidate_is_timed_compiled(backend):
    net = small_network()
    runner = TorchRunner(Compiled(net, backend=backend), None, torch.device("cpu"))
    assert not runner.ready((32, 32))  # its compile started
    threading.Timer(0.3, backend.release.set).start()
    with torch.inference_mode():  # as a GPU's copy in makes them
        images = torch.rand(2, 3, 32, 32)
    runner(images)  # waits for the compile: the timing is of compiled code
    assert backend.runs == 3 and runner.ready((32, 32))  # its sample, and a CPU's image at a time


def test_a_gpus_choice_waits_for_the_compile_with_the_reference_running(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    net = fresh_network(config=ArchConfig(channels=8))
    stylizer = Stylizer(net, "cpu", precision="fp32", backend="torch", tile=None)
    # The CUDA rows' shape on a CPU: the reference, and the engine that compiles (fp32 here, so that it runs)
    stylizer.candidates = {"torch-fp32": lambda: TorchRunner(stylizer.network, None, stylizer.device),
                           "inductor-fp16": lambda: TorchRunner(Compiled(stylizer.network, backend=backend), None,
                                                                stylizer.device)}
    with torch.inference_mode():  # as a run's photos come
        x, bucket = torch.rand(2, 3, 300, 500), size_bucket(300, 500)  # a CPU times at the bucket's size
    first = stylizer(x)
    assert stylizer.backend == "torch" and bucket not in stylizer._engines  # unsettled
    assert torch.equal(stylizer(x), first) and backend.graphs == 0
    threading.Timer(0.3, backend.release.set).start()
    chosen = stylizer.warm(300, 500)  # waits for the compile, times the two: settled, and recorded
    assert stylizer._engines[bucket] == chosen and chosen in ("torch-fp32", "inductor-fp16")
    out = stylizer(x)
    # the timing's batches and the warm-up's are of one kind; a CPU times at the bucket's size, so where the
    # compiled candidate won, the photos' own size is a second compile (a GPU times at the photos' size)
    assert backend.graphs == (2 if chosen == "inductor-fp16" else 1)
    assert "inductor-fp16" in " ".join(describe_measurements(measured_here()))
    assert torch.allclose(out, first, atol=1e-4)  # dynamo's graph of the network: 2.4e-5 apart where measured


def test_a_command_line_ends_without_waiting_for_a_compile():
    script = textwrap.dedent("""
        import threading, torch
        from stst.cli import _exit
        from stst.infer.compiled import Compiled

        def never(graph, inputs):
            threading.Event().wait(120)  # a compile that outlasts the run
            return graph.forward

        with torch.inference_mode():
            Compiled(torch.nn.Conv2d(3, 3, 3), backend=never)(torch.rand(2, 3, 32, 32))
        print("done", flush=True)
        _exit(1)
    """)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100)
    assert (done.returncode, done.stdout, done.stderr) == (1, "done\n", "")
    assert time.perf_counter() - start < 60
    assert not compiling()  # this process's threads: none left by the tests above


def test_a_compile_the_command_leaves_goes_on_in_a_process_of_its_own_for_the_next_run(tmp_path, monkeypatch):
    """``_exit`` hands a compile still running to a process of its own (stst.infer.compiled.hand_over), which compiles
    the same architecture, with weights of its own, into inductor's cache; the next run's network, whose weights
    differ, finds it there. Real inductor, which compiles for the CPU here as for a GPU there (about 20 s)."""
    from torch._dynamo.utils import counters

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    run = textwrap.dedent("""
        import logging, threading, torch
        import stst.infer.compiled as compiled
        from stst.cli import _exit
        from stst.model.network import ArchConfig, TransformerNet

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        compiled._compile = lambda module, kind: threading.Event().wait()  # a compile that outlasts the run
        with torch.inference_mode():
            compiled.Compiled(TransformerNet(ArchConfig(channels=4)).eval())(torch.rand(2, 3, 32, 32))
        _exit(0)
    """)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0 and "goes on in process" in done.stderr, done.stderr
    assert time.perf_counter() - start < 15  # the command did not wait for the compile
    entries = tmp_path / "inductor" / "fxgraph"
    while not (entries.is_dir() and any(p.is_file() for p in entries.rglob("*"))):
        assert time.perf_counter() - start < 240, "no compile arrived in the cache"
        time.sleep(0.5)
    counters.clear()
    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 32)
    try:
        with torch.inference_mode():  # the next run, its own weights
            assert Compiled(TransformerNet(ArchConfig(channels=4)).eval()).build(x).exception(timeout=60) is None
        assert (counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]) == (1, 0)
    finally:
        torch._dynamo.reset()


def test_a_process_waits_for_its_compile_rather_than_abort():
    """Outside the command line a compile thread is waited for: one killed inside torch.compile at exit aborts the
    process ("terminate called without an active exception", exit 134)."""
    script = textwrap.dedent("""
        import threading, time, torch
        from stst.infer.compiled import Compiled
        from stst.model.network import ArchConfig, TransformerNet

        entered = threading.Event()

        def slow(graph, inputs):
            entered.set()
            for _ in range(30):  # awake now and then, as a compile is
                time.sleep(0.05)
            return graph.forward

        with torch.inference_mode():
            Compiled(TransformerNet(ArchConfig(channels=8)).eval(), backend=slow)(torch.rand(2, 3, 32, 32))
        entered.wait()  # the process ends while the compile runs
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100)
    assert (done.returncode, done.stderr) == (0, "")


def test_the_compile_sample_has_the_batchs_kind():
    from stst.infer.compiled import Kind

    x = torch.rand(3, 3, 8, 12).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        kind = Kind.of(x)
        assert kind.autocast == torch.bfloat16 and kind.inference_mode and not kind.inference_tensor
    assert Kind.from_spec(json.loads(json.dumps(kind.spec()))) == kind  # as a handed-over compile gets it
    sample = kind.sample()
    assert sample.shape == (2, 3, 8, 12) and Kind.of(sample).layout == torch.channels_last
    with kind.mode():
        assert Kind.of(sample) == kind
    assert np.isfinite(sample.numpy()).all()

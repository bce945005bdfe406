"""The express lane: photos through a recorded ONNX Runtime or OpenVINO graph without importing torch."""

import functools
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from stst.infer import express
from stst.infer.engine import Stylizer
from stst.infer.caches import PLANS_FILE, ROUTES_FILE
from stst.infer.express import ExpressStylizer, recorded, request_key
from stst.infer.onnxruntime_graph import GraphRunner
from stst.infer.sizes import AUTO_PIXELS, SizeTally
from stst.infer.caches import cached_file, cached_graph
from stst.infer.choice import Trial, record_trial
from stst.model.bundled import resolve_model
from stst.model.export import export_model

from conftest import PHOTOS, fresh_network


def imported_torch(stderr: str) -> bool:
    """Whether a run under ``python -X importtime`` imported torch (one line per module imported)."""
    return any(re.search(r"\|\s+torch$", line) for line in stderr.splitlines())


def quantizer_imports_torch() -> bool:
    """Whether ONNX Runtime's quantizer imports torch itself, as the run that makes an int8 graph then does: in
    onnxruntime 1.23 (the newest for Python 3.10) its shape inference imports onnxruntime.tools, which imports torch
    wherever it is installed; 1.32 does not."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import onnxruntime.quantization"],
                          capture_output=True, text=True)
    return imported_torch(done.stderr)


def stylize(tmp_path, folder, *args, model="udnie-realtime", photos=PHOTOS):
    env = {**os.environ, "STST_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "stst", "stylize", str(photos), "-o",
                           f"{tmp_path / folder}/", "-m", str(model), *args], capture_output=True, text=True,
                          env=env)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_second_run_skips_torch_and_writes_the_same_pixels(tmp_path, backend):
    first = stylize(tmp_path, "first", "--backend", backend)
    assert first.returncode == 0, first.stderr[-500:]
    assert imported_torch(first.stderr)  # the torch path chose the graph engine and recorded its graph
    second = stylize(tmp_path, "second", "--backend", backend)
    assert second.returncode == 0 and "5 stylized, 0 skipped, 0 failed" in second.stdout
    assert not imported_torch(second.stderr)
    names = sorted(p.name for p in (tmp_path / "first").iterdir())
    assert len(names) == 5 and names == sorted(p.name for p in (tmp_path / "second").iterdir())
    for name in names:
        a, b = (np.asarray(Image.open(tmp_path / run / name)) for run in ("first", "second"))
        assert a.shape == (256, 384, 3) and np.array_equal(a, b)
    other = stylize(tmp_path, "third", "--backend", "torch")  # another request: nothing recorded for it
    assert other.returncode == 0 and imported_torch(other.stderr)


def test_the_run_that_times_the_engines_does_so_without_torch_from_the_first_runs_plan(tmp_path):
    """The first run of a folder runs untimed through the torch path and leaves a plan; the runs after it time the
    graph engines on their own photos in the lane (the int8 graph quantized and judged there), without torch,
    until one is chosen and routed; their photos stand, within int8's fidelity of the first run's."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in PHOTOS.glob("*.jpg"):  # 20 photos (a run of 8 or more of a model met before times its engines)
        for copy in (1, 2, 3, 4):
            shutil.copy(photo, folder / f"{copy}-{photo.name}")
    first = stylize(tmp_path, "first", photos=folder)
    assert first.returncode == 0 and imported_torch(first.stderr) and "timing" not in first.stderr
    [(key, plan)] = json.loads((tmp_path / "home" / PLANS_FILE).read_text()).items()
    assert plan["names"][:2] == ["onnxruntime-fp32", "onnxruntime-int8"] and not key.endswith("unmeasured")
    for run in range(2, 6):
        again = stylize(tmp_path, f"run{run}", "-v", photos=folder)
        assert again.returncode == 0 and "20 stylized" in again.stdout, again.stderr[-500:]
        assert not imported_torch(again.stderr) or (run == 2 and quantizer_imports_torch())
        assert ("timing" in again.stderr) == (run == 2)  # said once; a later run goes on with it
        routes = json.loads((tmp_path / "home" / ROUTES_FILE).read_text()).get(key)
        if routes:
            break
    assert [route[0] in plan["names"] for route in routes.values()] == [True]
    assert "onnxruntime-int8" in (tmp_path / "home" / "precision.json").read_text()  # judged faithful, timed
    for photo in (tmp_path / "first").iterdir():
        a, b = (np.asarray(Image.open(tmp_path / out / photo.name), np.float32) for out in ("first", "run2"))
        assert np.abs(a - b).mean() < 2  # int8's fidelity limit is 1.5 grey levels, and JPEG


def test_a_plan_leaves_out_an_unfaithful_int8_graph_and_takes_a_choice_made_before(tmp_path, monkeypatch):
    """The lane judges int8 as the torch path does (an unfaithful verdict leaves the int8 engines out), routes a
    size whose choice was made before without timing anything, and leaves a plan with one candidate to the torch
    path."""
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    graph = cached_graph(fresh_network(3))
    cached_file("w-int8.unfaithful", lambda path: path.write_text("int8 differs from fp32 by 9 grey levels\n"))
    names = ("onnxruntime-fp32", "openvino-fp32", "onnxruntime-int8")
    plan = express.Plan("key", 8, names, graph, ("w-int8.onnx", "w-int8.unfaithful"), AUTO_PIXELS["johnson"])
    assert plan.graphs() == {name: graph for name in names[:2]}
    trial = Trial(list(names[:2]), lane=True)
    trial.add("onnxruntime-fp32", 0.2), trial.add("openvino-fp32", 0.1)
    trial.add("onnxruntime-fp32", 0.2), trial.add("openvino-fp32", 0.1)
    record_trial(8, list(names[:2]), (256, 256), trial)
    built = []
    lane = ExpressStylizer({}, lambda: built.append(1) or (lambda batch: batch), plan)
    x = np.random.default_rng(0).random((1, 3, 200, 240), dtype=np.float32)
    assert np.allclose(lane(x), GraphRunner(graph)(x), atol=1e-4) and built == []
    spare = ("onnxruntime-fp32", graph)  # for sizes that do not repeat: OpenVINO compiles each size
    assert recorded("key") == {(256, 256): ("openvino-fp32", graph, AUTO_PIXELS["johnson"], spare)}
    alone = ExpressStylizer({}, lambda: built.append(1) or (lambda batch: batch),
                            express.Plan("key", 8, names[::2], graph, plan.int8, AUTO_PIXELS["johnson"]))
    assert alone(x) is x and built == [1]  # int8 left out, one candidate: nothing to time here


def test_a_size_without_a_recorded_graph_goes_through_the_fallback(tmp_path):
    graph = cached_graph(fresh_network(3))
    built = []

    def fallback():
        built.append(1)
        return lambda batch: np.zeros_like(batch)

    lane = ExpressStylizer({(256, 256): ("onnxruntime-fp32", graph, AUTO_PIXELS["johnson"], None),
                            (512, 768): ("onnxruntime-fp32", graph, 500 * 700, None)}, fallback)
    x = np.random.default_rng(0).random((1, 3, 200, 240), dtype=np.float32)
    out = lane(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 and out.std() > 0 and built == []
    assert np.allclose(out, GraphRunner(graph)(x))
    assert lane(np.ones((1, 3, 500, 700), np.float32)).any() and built == []  # 512x768, at its limit: whole
    assert not lane(np.ones((2, 3, 520, 720), np.float32)).any() and built == [1]  # above it: the torch path's
    lane(np.ones((1, 3, 480, 640), np.float32))
    assert built == [1]  # the torch path is built once


def test_only_graph_engines_chosen_on_a_cpu_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    model_path, _ = resolve_model("udnie", "realtime")
    key = request_key(model_path, "auto", "auto")
    seen = []
    Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None, route=seen.append)(
        torch.rand(1, 3, 64, 64))
    assert seen == []  # torch was asked for
    ort = Stylizer(fresh_network(), "cpu", backend="onnxruntime", tile=None,
                   route=functools.partial(express.record, key))
    ort(torch.rand(1, 3, 300, 400))
    route = ("onnxruntime-fp32", ort.graph.path, AUTO_PIXELS["johnson"], None)  # tiles above 4 MP: torch's
    assert recorded(key) == {(256, 256): route, (384, 512): route}
    assert recorded(request_key(model_path, "fp32", "auto")) == {}
    vino = Stylizer(fresh_network(), "cpu", backend="openvino", precision="fp32", tile=None,
                    route=functools.partial(express.record, key))
    vino(torch.rand(1, 3, 600, 800))
    assert recorded(key)[(512, 768)] == ("openvino-fp32", ort.graph.path, AUTO_PIXELS["johnson"], None)  # forced
    (tmp_path / "onnx" / ort.graph.path.name).unlink()  # a graph removed from the cache is no route
    assert recorded(key) == {}
    assert list(json.loads((tmp_path / ROUTES_FILE).read_text())) == [key]


def test_a_run_that_measures_takes_only_measured_routes_and_others_prefer_them(tmp_path, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    model_path, _ = resolve_model("udnie", "realtime")
    graph = cached_graph(fresh_network(3))
    whole = AUTO_PIXELS["realtime"]
    express.record(request_key(model_path, "auto", "auto", measured=False), (256, 256), "onnxruntime-fp32", graph,
                   whole)
    express.record(request_key(model_path, "auto", "auto", measured=False), (384, 512), "onnxruntime-fp32", graph,
                   whole)
    express.record(request_key(model_path, "auto", "auto"), (384, 512), "openvino-fp32", graph, whole)
    fallback = lambda: None  # noqa: E731 (never built here)
    long_run = express.open_express(model_path, "auto", "auto", fallback, measure=True)
    short_run = express.open_express(model_path, "auto", "auto", fallback, measure=False)
    assert long_run.routes == {(384, 512): ("openvino-fp32", graph, whole, None)}
    assert short_run.routes == {(256, 256): ("onnxruntime-fp32", graph, whole, None),
                                (384, 512): ("openvino-fp32", graph, whole, None)}


def test_sizes_that_repeat_pay_for_a_compile_and_sizes_met_once_run_on_the_spare(tmp_path, monkeypatch):
    """A folder of camera photos (one or two sizes) compiles them; a folder of photos each of its own size runs
    the engine that does not compile, once it is clear that they do not repeat; a size met again compiles."""
    camera = SizeTally()
    assert all(camera.pays((768, 512) if i % 4 == 3 else (512, 768), 2) for i in range(12))
    mixed = SizeTally()
    assert [mixed.pays((300 + i, 400), 1) for i in range(6)] == [True, False, False, False, False, False]
    assert mixed.pays((300, 400), 1)  # met again
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    model_path, _ = resolve_model("udnie", "realtime")
    key = request_key(model_path, "auto", "auto")
    graph = cached_graph(fresh_network(3))
    express.record(key, (256, 256), "openvino-fp32", graph, AUTO_PIXELS["johnson"], ("onnxruntime-fp32", graph))
    lane = express.open_express(model_path, "auto", "auto", lambda: None)
    assert lane.routes == {(256, 256): ("openvino-fp32", graph, AUTO_PIXELS["johnson"], ("onnxruntime-fp32", graph))}
    rng = np.random.default_rng(0)
    for height in (200, 201, 202, 201):
        lane(rng.random((1, 3, height, 240), dtype=np.float32))
    assert [engine for engine, _ in lane._graphs] == ["openvino-fp32", "onnxruntime-fp32"]  # 200 first, 201 again


def test_an_exported_onnx_model_runs_without_torch_on_the_cpu(tmp_path):
    net = fresh_network(5)
    export_model(net, tmp_path / "style.onnx", "onnx")
    done = stylize(tmp_path, "out", "--device", "cpu", model=tmp_path / "style.onnx")
    assert done.returncode == 0 and "5 stylized" in done.stdout and not imported_torch(done.stderr)
    photo = np.asarray(Image.open(PHOTOS / "kodim23.jpg"), np.float32).transpose(2, 0, 1)[None] / 255
    expected = (net(torch.from_numpy(photo)).detach().clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy()
    written = np.asarray(Image.open(tmp_path / "out" / "kodim23-style.jpg"), np.float32)
    assert written.shape == expected.shape and np.abs(written - expected).mean() < 3  # JPEG at quality 95

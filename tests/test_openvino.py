"""OpenVINO runs the exported graph: the torch output in fp32, close to it in bf16, any size, batches in order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.base.errors import FileProblem
from stst.base.machine import cpu_cores
from stst.cli import main
from stst.infer import openvino_graph
from stst.infer.engine import Stylizer
from stst.infer.caches import cached_graph
from stst.infer.openvino_graph import KEEP_SIZES, OpenVinoGraph
from stst.infer.choice import cpu_has_bf16
from stst.model.bundled import bundled_models
from stst.model.checkpoint import load_model

from conftest import PHOTOS, fresh_network


@pytest.fixture(scope="module")
def realtime():
    from stst.model.checkpoint import load_model

    return load_model(bundled_models()["starry_night-realtime"])[0]


def test_fp32_gives_the_torch_output_at_any_size_and_keeps_the_batch_order(stst_home):
    net = fresh_network(4)
    engine = Stylizer(net, "cpu", backend="openvino", precision="fp32", tile=None)
    reference = Stylizer(net, "cpu", backend="torch", precision="fp32", tile=None)
    batch = torch.rand(3, 3, 37, 53)
    batch[1] = 0  # the images differ clearly, so that an order mixed up shows
    out = engine(batch)
    assert (engine.backend, engine.precision) == ("openvino", "fp32")
    assert out.shape == batch.shape and (out - reference(batch)).abs().max() < 1e-4
    other = torch.rand(1, 3, 8, 300)
    assert (engine(other) - reference(other)).abs().max() < 1e-4


def test_a_model_is_compiled_per_size_and_only_the_latest_sizes_are_kept(stst_home, monkeypatch):
    runner = OpenVinoGraph(cached_graph(fresh_network(5)), "fp32")
    sizes = [(16, 16 + 4 * i) for i in range(KEEP_SIZES + 1)]
    for size in sizes:
        out = runner(np.random.default_rng(0).random((1, 3, *size), dtype=np.float32))
        assert out.shape == (1, 3, *size) and out.min() >= 0 and out.max() <= 1
    assert list(runner._compiled) == [(*size, 1) for size in sizes[1:]]  # one image: one stream of all the cores
    runner(torch.rand(2, 3, *sizes[-1]))  # a batch: a stream per core
    assert list(runner._compiled)[-1] == (*sizes[-1], cpu_cores())
    compiled = []
    monkeypatch.setattr(runner._core, "compile_model", lambda *args: compiled.append(args) or None)
    runner(torch.rand(2, 3, *sizes[-1]))  # kept: not compiled again
    runner(torch.rand(1, 3, *sizes[-1]))
    assert compiled == []


def test_bf16_stays_within_a_grey_level_of_fp32(realtime, stst_home):
    photo = torch.rand(1, 3, 96, 128)
    graph = cached_graph(realtime)
    fp32, bf16 = OpenVinoGraph(graph, "fp32")(photo), OpenVinoGraph(graph, "bf16")(photo)
    difference = float(np.abs(fp32 - bf16).mean()) * 255
    assert difference < 1.0
    if cpu_has_bf16():  # natively: then it really ran in bf16
        assert difference > 0.01


def test_an_unreadable_graph_is_one_line_naming_it(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    with pytest.raises(FileProblem, match="broken.onnx.*not a readable ONNX model"):
        OpenVinoGraph(broken)


def test_the_cli_runs_openvino_and_refuses_what_it_cannot_run(tmp_path):
    assert openvino_graph.available()  # a dependency of stst
    done = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim05.jpg"), "-m", "starry_night-realtime",
                                     "--backend", "openvino", "-o", str(tmp_path / "out.png")])
    assert done.exit_code == 0, done.output
    assert Image.open(tmp_path / "out.png").size == (384, 256)
    refused = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim05.jpg"), "--backend", "openvino",
                                        "--precision", "fp16", "-o", str(tmp_path / "x.png")])
    assert refused.exit_code == 2
    assert refused.output.strip() == "stst: error: --backend openvino runs fp32 or bf16 or int8, not fp16"


def test_the_int8_graph_runs_on_openvino_within_its_margin_in_bf16_where_the_cpu_has_it(stst_home):
    """The int8 engine: ONNX Runtime's quantized graph, its float layers in bf16 where OpenVINO reports native bf16
    (as torch does here), else fp32; as faithful to fp32 as ONNX Runtime's run of the same graph, within 0.1."""
    from stst.infer import int8

    model = load_model(bundled_models()["starry_night-light"])[0]
    assert openvino_graph._hint("int8") == ("bf16" if cpu_has_bf16() else "f32")
    photos = int8.calibration_photos()
    fp32 = Stylizer(model, "cpu", backend="onnxruntime", precision="fp32", tile=None)
    ort = Stylizer(model, "cpu", backend="onnxruntime", precision="int8", tile=None)
    ov = Stylizer(model, "cpu", backend="openvino", precision="int8", tile=None)
    assert (ov.backend, ov.precision) == ("openvino", "int8")
    difference = int8.grey_level_difference(fp32, ov, photos)
    assert 0 < difference <= int8.FIDELITY
    assert difference < int8.grey_level_difference(fp32, ort, photos) + 0.1

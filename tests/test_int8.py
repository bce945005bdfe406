"""The int8 engine: a quantized graph of the residual blocks, used only where its output stays close to fp32."""

import onnx
import pytest
import torch
from click.testing import CliRunner

from stst.base.errors import StstError
from stst.cli import main
from stst.infer import int8
from stst.infer.engine import engine_candidates
from stst.infer.onnxruntime_graph import OnnxStylizer
from stst.model.checkpoint import save_checkpoint
from stst.model.network import ArchConfig, build_network, norm_layers

from conftest import PHOTOS


def realtime_network(seed: int):
    """An untrained network of the realtime design with deterministic random weights."""
    torch.manual_seed(seed)
    return build_network(ArchConfig(channels=16, design="realtime")).eval()

CPU = torch.device("cpu")


def test_the_fidelity_check_refuses_outputs_that_differ_by_more_than_the_limit():
    photos = int8.calibration_photos()
    assert len(photos) == 4 and all(p.shape[1] == 3 for p in photos)
    reference = lambda x: x * 0.5  # noqa: E731 (plain runners)
    assert int8.check_fidelity(reference, lambda x: x * 0.5 + 1 / 255, photos) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(StstError, match=r"int8 differs from fp32 by 2.00 grey levels on average, more than 1.5"):
        int8.check_fidelity(reference, lambda x: x * 0.5 + 2 / 255, photos)


def test_only_the_residual_blocks_are_quantized_and_any_size_goes_through(monkeypatch):
    monkeypatch.setattr(int8, "FIDELITY", 255.0)  # an untrained network: its fidelity is not the point here
    model = realtime_network(11)
    graph = onnx.load(str(int8.quantized_graph(model)))
    producers = {out: node for node in graph.graph.node for out in node.output}
    quantized = sorted(node.name for node in graph.graph.node if node.op_type == "Conv"
                       and producers[node.input[0]].op_type == "DequantizeLinear")
    assert quantized == sorted(f"/blocks/blocks.{b}/conv{c}/conv2d/Conv" for b in range(4) for c in (1, 2))
    kinds = [node.op_type for node in graph.graph.node]
    assert kinds.count("InstanceNormalization") == len(norm_layers(model))  # they stay float ops
    out = OnnxStylizer(int8.quantized_graph(model))(torch.rand(1, 3, 37, 53))
    assert out.shape == (1, 3, 37, 53)


def test_an_unfaithful_graph_is_left_out_of_auto_and_refused_when_asked_for(monkeypatch, tmp_path):
    monkeypatch.setattr(int8, "FIDELITY", 0.0)  # no quantized graph is exactly fp32
    model = realtime_network(12)
    assert "onnxruntime-int8" not in engine_candidates(CPU, model)
    assert "onnxruntime-fp32" in engine_candidates(CPU, model)  # judged once: the verdict is kept
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, {"note": "untrained"})
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), "--model", str(path),
                                       "--precision", "int8", "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 2
    assert "stst: error: int8 differs from fp32 by" in result.output and "more than 0" in result.output


def test_a_faithful_graph_is_a_candidate_and_runs_when_asked_for(tmp_path):
    model = realtime_network(13)
    assert "onnxruntime-int8" in engine_candidates(CPU, model)
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, {"note": "untrained"})
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), "--model", str(path),
                                       "--precision", "int8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()

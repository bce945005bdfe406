"""The engine table is the one list of engines: the CLI, the choice, the lane and `stst info` read it; one
fingerprint of the machine keys every cache."""

import json

import pytest
from click.testing import CliRunner

from stst.base.errors import StstError
from stst.cli import main
from stst.infer import caches, engines
from stst.infer.caches import CHOICES_FILE, ROUTES_FILE
from stst.infer.choice import decide
from stst.infer.express import record, recorded, request_key
from stst.infer.engines import ENGINES, offered
from stst.infer.sizes import AUTO_PIXELS


def names(rows):
    return [e.name for e in rows]


def test_the_cli_offers_what_the_table_holds():
    stylize = {p.name: p for p in main.commands["stylize"].params}
    assert list(stylize["backend"].type.choices) == ["auto", "torch", "inductor", "onnxruntime", "openvino"]
    assert list(stylize["precision"].type.choices) == ["auto", "fp32", "bf16", "fp16", "int8"]
    evaluate = {p.name: p for p in main.commands["evaluate"].params}
    assert list(evaluate["engine"].type.choices) == [e.name for e in ENGINES]


def test_requests_leave_the_engines_the_table_says(monkeypatch):
    monkeypatch.setattr(engines, "installed", lambda package: True)
    assert names(offered("auto", "auto", "cpu")) == ["torch-fp32", "onnxruntime-fp32", "onnxruntime-int8",
                                                     "openvino-fp32", "openvino-int8"]
    assert names(offered("auto", "auto", "cpu", native_bf16=True)) == [
        "torch-fp32", "torch-bf16", "onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-bf16",
        "openvino-int8"]
    assert names(offered("auto", "auto", "cuda")) == ["torch-fp16", "inductor-fp16"]  # compiled: see the next test
    assert names(offered("auto", "inductor", "cuda")) == ["inductor-fp16"]
    assert names(offered("fp32", "auto", "cuda")) == ["torch-fp32"]
    assert names(offered("auto", "onnxruntime", "cpu")) == ["onnxruntime-fp32"]  # int8 only when asked for
    assert names(offered("int8", "auto", "cpu")) == ["onnxruntime-int8", "openvino-int8"]
    for request, error in [(("int8", "auto", "cuda"),
                            "--precision int8 runs on CPUs, through ONNX Runtime or OpenVINO only"),
                           (("auto", "openvino", "cuda"), "--backend openvino runs on CPUs"),
                           (("auto", "inductor", "cpu"), "--backend inductor runs on CUDA GPUs"),
                           (("int8", "inductor", "cuda"), "--backend inductor runs fp16, not int8"),
                           (("fp16", "onnxruntime", "cpu"), "--backend onnxruntime runs fp32 or int8, not fp16"),
                           (("fp64", "auto", "cpu"), "unknown precision 'fp64' (use auto, fp32, bf16, fp16, int8)")]:
        with pytest.raises(StstError) as refused:
            offered(*request)
        assert str(refused.value) == error


def test_info_engines_lists_every_engine_of_the_table(stst_home):
    shown = CliRunner().invoke(main, ["info", "--engines"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    for e in ENGINES:
        [line] = [line for line in lines if line.split()[:1] == [e.name]]
        assert f"margin {e.margin}" in line and e.output in line


def test_one_fingerprint_keys_every_cache_and_other_software_is_pruned(monkeypatch, tmp_path):
    stst_home = tmp_path / "home"
    monkeypatch.setenv("STST_HOME", str(stst_home))
    model = tmp_path / "m.pth"
    model.write_bytes(b"weights")
    graph = tmp_path / "g.onnx"
    graph.write_bytes(b"graph")
    timings = []

    def measure(runner, size):
        timings.append(runner)
        return {"a": 1.0, "b": 0.5}[runner]

    def choose() -> str:
        return decide(32, {"torch-fp32": lambda: "a", "onnxruntime-fp32": lambda: "b"}, (256, 256), measure).why

    assert choose() == "measured" and choose() == "cached"
    record(request_key(model, "auto", "auto"), (256, 256), "onnxruntime-fp32", graph, AUTO_PIXELS["johnson"])
    assert recorded(request_key(model, "auto", "auto"))
    def entries() -> list[list[str]]:
        return [list(json.loads((stst_home / name).read_text())) for name in (CHOICES_FILE, ROUTES_FILE)]

    for change in ("threads", "software"):
        if change == "threads":
            monkeypatch.setenv("OMP_NUM_THREADS", "7")
        else:
            monkeypatch.setattr(caches, "package_version", lambda name: "99.0")
        assert choose() == "measured"  # the choice is timed again ...
        assert not recorded(request_key(model, "auto", "auto"))  # ... and the lane's routes miss too
        record(request_key(model, "auto", "auto"), (256, 256), "onnxruntime-fp32", graph, AUTO_PIXELS["johnson"])
        if change == "threads":  # another thread count is another setting of the machine: both kept
            assert [len(keys) for keys in entries()] == [2, 2]
    # this CPU's entries of older software are pruned
    assert all(len(keys) == 1 and "99.0" in keys[0] for keys in entries())


def test_graphs_another_torch_or_onnx_runtime_made_are_pruned(monkeypatch, tmp_path):
    monkeypatch.setenv("STST_HOME", str(tmp_path))
    folder = tmp_path / "onnx"
    folder.mkdir(parents=True)
    torch_part, ort_part = caches._made_by()
    old = [folder / "aaa-torch0.1.onnx", folder / "aaa-int8-ort0.1.onnx", folder / "aaa-int8-ort0.1.unfaithful"]
    current = [folder / f"bbb{torch_part}onnx", folder / f"bbb-int8{ort_part}onnx"]
    for path in old + current:
        path.write_text("x")
    made = caches.cached_file(f"ccc{torch_part}onnx", lambda path: path.write_text("graph"))
    assert made.read_text() == "graph"
    assert sorted(folder.iterdir()) == sorted([*current, made])

import onnx
import pytest
import torch

from stst.model.export import export_model
from stst.model.network import ArchConfig, build_network
from stst.infer.engine import Stylizer
from stst.model.rewrite import PhaseInputConv, inference_form
from statistics_smoothing import StatisticsSmoother  # scripts/: a lever the benchmark measures

DESIGNS = [ArchConfig(8), ArchConfig(8, design="realtime"), ArchConfig(8, residual=True, design="realtime")]


def scrambled(config: ArchConfig) -> torch.nn.Module:
    """A network whose every weight matters: random, large enough that the output spans the 0..1 range."""
    torch.manual_seed(3)
    net = build_network(config).eval()
    for param in net.parameters():
        torch.nn.init.normal_(param, std=0.5)
    torch.nn.init.normal_(net.last.conv2d.weight, std=5.0)
    return net


@pytest.mark.parametrize("config", DESIGNS, ids=lambda c: c.tag.replace(" ", "-") + ("-residual" * c.residual))
def test_the_inference_form_paints_the_same_images(config):
    net = scrambled(config)
    fast = inference_form(net)
    for size in ((1, 1), (5, 7), (37, 53), (130, 67)):  # odd sizes reach the rewritten layers padded
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            expected, got = net(x), fast(x)
        assert got.shape == expected.shape == x.shape
        assert (got - expected).abs().max().item() < 1e-4
    assert expected.std().item() > 0.02  # 200x the tolerance
    assert type(net.last).__name__ == "ConvLayer"  # the original is left as it was


def exported(tmp_path, config: ArchConfig) -> onnx.GraphProto:
    path = tmp_path / "net.onnx"
    export_model(scrambled(config), path, "onnx")
    return onnx.load(str(path)).graph


def interleaving(graph: onnx.GraphProto) -> list[list[int]]:
    """The kernels of the graph's pixel shuffles, which export writes as transposed convolutions (no DepthToSpace)."""
    assert not [n for n in graph.node if n.op_type == "DepthToSpace"]
    weights = {t.name: list(t.dims) for t in graph.initializer}
    return [weights[n.input[1]] for n in graph.node if n.op_type == "ConvTranspose"]


def test_exported_graphs_paint_rgb_at_half_resolution_and_need_no_transpose(tmp_path):
    graph = exported(tmp_path, DESIGNS[0])
    weights = {t.name: t.dims for t in graph.initializer}
    last = [n for n in graph.node if n.op_type == "Conv"][-1]
    assert weights[last.input[1]][0] == 12  # 3 colours x 4 phases
    assert [a.ints for a in last.attribute if a.name == "strides"] == [[2, 2]]
    assert interleaving(graph) == [[12, 3, 2, 2]]


def test_the_realtime_graph_has_no_full_resolution_layer(tmp_path):
    graph = exported(tmp_path, DESIGNS[1])
    weights = {t.name: list(t.dims) for t in graph.initializer}
    convs = [weights[n.input[1]] for n in graph.node if n.op_type == "Conv"]
    assert convs[-2:] == [[4 * 4, 8, 3, 3], [12, 4 * 4, 3, 3]]  # upsampling to 4 x 4 channels, then to 4 x RGB
    ops = [n.op_type for n in graph.node]
    assert ops.count("Resize") == 1  # of the two upsamplings, only the first is left
    assert interleaving(graph) == [[12, 3, 2, 2]]
    pixel_transposes = [n.name for n in graph.node if n.op_type == "Transpose" and len(n.attribute[0].ints) == 6]
    assert not pixel_transposes  # space-to-depth exports as a 6-dimensional transpose


def test_torch_engines_on_cpus_run_the_realtime_design_rewritten_and_its_norms_stay_steerable():
    net = scrambled(DESIGNS[1])
    stylizer = Stylizer(net, "cpu", precision="fp32", backend="torch", tile=None)
    assert isinstance(stylizer.network.out, PhaseInputConv)
    frames = torch.rand(3, 3, 24, 40)
    assert (stylizer(frames) - net(frames).clamp(0, 1)).abs().max().item() < 1e-4
    # The smoothing hooks the model's own norms; with the statistics held from the first frame (momentum near 1)
    # the rewritten network paints the later frames as the plain one does under the same hooks, not as without them.
    smoother, plain = StatisticsSmoother(net, momentum=0.999), StatisticsSmoother(net, momentum=0.999)
    smoothed, reference = smoother.around(stylizer)(frames), plain.around(lambda b: net(b).clamp(0, 1))(frames)
    assert (smoothed - reference).abs().max().item() < 1e-4
    assert (smoothed - stylizer(frames)).abs().max().item() > 0.01

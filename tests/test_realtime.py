"""The realtime design: Johnson's family at under 10,000 multiply-adds per pixel, any image size."""

import pytest
import torch

from stst.base.errors import FileProblem
from stst.infer.engine import Stylizer
from stst.infer.tiling import stylize_tiled
from stst.model.checkpoint import load_checkpoint, load_model, save_checkpoint
from stst.model.export import export_model
from stst.model.network import ArchConfig, RealtimeNet, build_network

REALTIME = ArchConfig(channels=16, design="realtime")
MAX_MACS_PER_PIXEL = 10_000


def realtime_net(seed: int = 0, config: ArchConfig = REALTIME) -> RealtimeNet:
    torch.manual_seed(seed)
    return build_network(config).eval()


def counted_macs(net: torch.nn.Module, height: int, width: int) -> float:
    """Multiply-adds per pixel of every convolution, counted on a real forward pass without borders."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * module.in_channels // module.groups * k

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    net.border = 0
    with torch.no_grad():
        net(torch.rand(1, 3, height, width))
    for hook in hooks:
        hook.remove()
    return total / (height * width)


def test_its_cost_is_bounded_and_stated_exactly():
    assert counted_macs(realtime_net(), 256, 384) == REALTIME.macs_per_pixel() <= MAX_MACS_PER_PIXEL
    assert REALTIME.macs_per_pixel() * 19 < ArchConfig().macs_per_pixel()


def test_only_3x3_layers():
    net = realtime_net()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(max(m.kernel_size) == 3 for m in convs)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert len([m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]) == 4 + 2 * 4


@pytest.mark.parametrize("size", [(1, 1), (2, 200), (5, 3), (97, 131), (130, 67)])
def test_output_has_input_size(size):
    with torch.no_grad():
        out = realtime_net()(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size) and torch.isfinite(out).all()


def test_residual_starts_as_the_identity():
    x = torch.rand(1, 3, 45, 70)
    net = realtime_net(config=ArchConfig(channels=16, design="realtime", residual=True))
    assert torch.allclose(net(x), x, atol=1e-6)


def test_a_checkpoint_keeps_the_design_and_an_unknown_one_is_refused(tmp_path):
    net = realtime_net(3)
    save_checkpoint(tmp_path / "r.pth", net)
    loaded, ckpt = load_model(tmp_path / "r.pth")
    assert isinstance(loaded, RealtimeNet) and ckpt.arch == REALTIME
    x = torch.rand(1, 3, 40, 56)
    assert (loaded(x) - net(x)).abs().max() < 2e-2  # weights stored as float16
    raw = torch.load(tmp_path / "r.pth", weights_only=True)
    raw["arch"]["design"] = "transformer-xl"
    torch.save(raw, tmp_path / "odd.pth")
    with pytest.raises(FileProblem, match="invalid architecture: design 'transformer-xl' \\(known: johnson, realtime\\)"):
        load_checkpoint(tmp_path / "odd.pth")
    raw["arch"]["design"] = "johnson"  # realtime weights under Johnson's design do not fit
    torch.save(raw, tmp_path / "mixed.pth")
    with pytest.raises(FileProblem, match="weights do not fit the network"):
        load_checkpoint(tmp_path / "mixed.pth")


@pytest.mark.filterwarnings("ignore::FutureWarning:torch.jit")  # deprecated, still the C++ route
def test_onnx_runtime_and_tiles_give_the_eager_output(tmp_path, stst_home):
    net, x = realtime_net(5), torch.rand(1, 3, 300, 420)
    reference = Stylizer(net, "cpu", precision="fp32", backend="torch", tile=None)(x)
    assert (Stylizer(net, "cpu", backend="onnxruntime", tile=None)(x) - reference).abs().max() < 1e-4
    tiled = stylize_tiled(net, x, 256, stats_size=10_000).clamp(0, 1)
    assert (tiled - reference).abs().max() < 1e-3
    export_model(net, tmp_path / "r.pt", "torchscript")
    scripted = torch.jit.load(str(tmp_path / "r.pt"))
    assert (scripted(x).clamp(0, 1) - reference).abs().max() < 1e-5

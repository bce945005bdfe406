import pytest
import torch

from stst.model.network import ArchConfig, TransformerNet, pad_to_multiple

from conftest import fresh_network


@pytest.mark.parametrize("size", [(1, 1), (2, 200), (5, 3), (97, 131), (64, 64), (130, 67)])
def test_output_has_input_size(size):
    net = fresh_network()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


def test_padding_replicates_edges_up_to_a_multiple_of_four():
    x = torch.arange(97 * 131, dtype=torch.float32).reshape(1, 1, 97, 131)
    padded, (top, left) = pad_to_multiple(x)
    assert padded.shape[-2:] == (100, 132)
    assert torch.equal(padded[..., top : top + 97, left : left + 131], x)
    assert torch.equal(padded[..., top - 1, left : left + 131], x[..., 0, :])


@pytest.mark.parametrize("size, padded_size", [(1, 8), (4, 8), (5, 8), (8, 8), (9, 12), (64, 64)])
def test_padded_sizes(size, padded_size):
    padded, _ = pad_to_multiple(torch.rand(1, 3, size, 13))
    assert padded.shape[-2:] == (padded_size, 16)


def test_global_residual_starts_as_the_identity():
    net = TransformerNet(ArchConfig(residual=True))
    x = torch.rand(1, 3, 45, 70)
    assert torch.allclose(net(x), x, atol=1e-6)


def test_parameter_names_match_pytorch_examples():
    keys = set(TransformerNet().state_dict())
    for name in ["conv1.conv2d.weight", "in1.weight", "in3.bias", "res1.conv1.conv2d.weight",
                 "res5.in2.weight", "deconv1.conv2d.weight", "in5.bias", "deconv3.conv2d.bias"]:
        assert name in keys
    assert not any("running" in k for k in keys)
    assert sum(p.numel() for p in TransformerNet().parameters()) == 1_679_235


def test_no_transposed_convolutions():
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in TransformerNet().modules())


def test_width_setting_changes_the_network():
    narrow = TransformerNet(ArchConfig(channels=16))
    assert narrow.conv1.conv2d.out_channels == 16 and narrow.res5.conv1.conv2d.in_channels == 64
    assert narrow(torch.rand(1, 3, 33, 21)).shape == (1, 3, 33, 21)


def test_border_margin_only_at_inference():
    x = torch.rand(1, 3, 20, 24)
    padded, offsets = pad_to_multiple(x, margin=16)
    assert padded.shape[-2:] == (52, 56) and offsets == (16, 16)
    net = fresh_network()
    seen = []
    net.conv1.register_forward_pre_hook(lambda m, inputs: seen.append(tuple(inputs[0].shape[-2:])))
    net.train()(x)
    net.eval()(x)
    assert seen == [(20, 24), (52, 56)]

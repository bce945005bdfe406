import pytest
import torch

from stst.network import ArchConfig, TransformerNet, pad_to_multiple

from conftest import fresh_network


@pytest.mark.parametrize("size", [(1, 1), (2, 200), (5, 3), (97, 131), (64, 64), (130, 67)])
def test_output_has_input_size(size):
    net = fresh_network()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


def test_padding_reflects_and_reaches_multiple_of_four():
    x = torch.arange(97 * 131, dtype=torch.float32).reshape(1, 1, 97, 131)
    padded, (top, left) = pad_to_multiple(x)
    assert padded.shape[-2:] == (100, 132)
    assert torch.equal(padded[..., top : top + 97, left : left + 131], x)
    # reflection, not zeros or replication: the row above the image mirrors row 1
    assert torch.equal(padded[..., top - 1, left : left + 131], x[..., 1, :])


def test_aligned_input_is_not_padded():
    x = torch.rand(1, 3, 64, 128)
    padded, offsets = pad_to_multiple(x)
    assert padded is x and offsets == (0, 0)


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
    narrow = TransformerNet(ArchConfig(channels=16, residual_blocks=3))
    assert narrow.conv1.conv2d.out_channels == 16 and not hasattr(narrow, "res4")
    assert narrow(torch.rand(1, 3, 33, 21)).shape == (1, 3, 33, 21)

import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.model.checkpoint import save_checkpoint
from stst.cli import main
from stst.base.imageio import read_photo
from stst.model.network import ArchConfig

from conftest import PHOTOS, fresh_network


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory):
    """A residual network with non-trivial last layer, saved as a stst model."""
    net = fresh_network(seed=8, config=ArchConfig(residual=True))
    torch.nn.init.normal_(net.deconv3.conv2d.weight, std=0.02)
    path = tmp_path_factory.mktemp("export") / "net.pth"
    save_checkpoint(path, net)
    return net, path


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_exported_model_agrees_with_pytorch_at_two_sizes(tmp_path, trained_like, fmt, suffix):
    net, path = trained_like
    out = tmp_path / f"net{suffix}"
    result = CliRunner().invoke(main, ["export", str(path), "--format", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        run = lambda x: torch.from_numpy(session.run(None, {"image": x.numpy()})[0])  # noqa: E731
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still the C++ route
            scripted = torch.jit.load(str(out))
        run = lambda x: scripted(x)  # noqa: E731
    for size in (131, 256):  # 131 px: odd sizes go through the exported padding
        x = read_photo(PHOTOS / "kodim05.jpg", max_size=size).rgb[None]
        with torch.no_grad():
            expected = net(x)
        got = run(x)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < 1e-3
    # what was exported is not a model for the commands that read one, and says so in one line
    info = CliRunner().invoke(main, ["info", str(out)])
    problem = {"onnx": "an exported ONNX graph: stst stylize runs it, this command needs the .pth model it came from",
               "torchscript": "a TorchScript archive, which stst never loads (it holds code): give the .pth model it "
                              "came from"}[fmt]
    assert info.exit_code == 2 and info.stderr == f"stst: error: {out}: {problem}\n"
    if fmt == "torchscript":  # the archive's folder is its own, not the temporary file's name
        assert {name.split("/")[0] for name in zipfile.ZipFile(out).namelist()} == {"archive"}


def test_stylize_runs_onnx_models(tmp_path, trained_like):
    _, path = trained_like
    onnx_path = tmp_path / "style.onnx"
    assert CliRunner().invoke(main, ["export", str(path), "--format", "onnx", "-o", str(onnx_path)]).exit_code == 0
    src = tmp_path / "p.jpg"
    Image.open(PHOTOS / "kodim23.jpg").resize((97, 61)).save(src)
    result = CliRunner().invoke(main, ["stylize", str(src), "-m", str(onnx_path), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 0, result.output
    via_torch = CliRunner().invoke(main, ["stylize", str(src), "-m", str(path), "-o", str(tmp_path / "t.png"),
                                          "--precision", "fp32"])
    assert via_torch.exit_code == 0
    a = np.asarray(Image.open(tmp_path / "o.png"), dtype=np.int16)
    b = np.asarray(Image.open(tmp_path / "t.png"), dtype=np.int16)
    assert a.shape == (61, 97, 3) and np.abs(a - b).max() <= 1


def test_missing_onnxruntime_gives_an_install_hint(tmp_path, trained_like, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    (tmp_path / "m.onnx").write_bytes(b"not used")
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim01.jpg"), "-m", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert "needs the package 'onnxruntime': pip install onnxruntime (a dependency" in result.output

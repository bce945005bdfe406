import os
import zipfile

import pytest
import torch
from click.testing import CliRunner

from stst.cli import main
from stst.model.checkpoint import load_checkpoint, load_model, save_checkpoint
from stst.base.errors import FileProblem
from stst.model.network import ArchConfig

from conftest import fresh_network


def test_round_trip_keeps_weights_arch_and_metadata(tmp_path):
    net = fresh_network(config=ArchConfig(channels=16, residual=True))
    path = tmp_path / "m.pth"
    save_checkpoint(path, net, {"style": {"name": "x.jpg"}}, training={"iteration": 7})
    model, ckpt = load_model(path)
    assert ckpt.arch == ArchConfig(channels=16, residual=True)
    assert ckpt.metadata["style"] == {"name": "x.jpg"}
    assert ckpt.metadata["torch_version"] == str(torch.__version__)
    assert {"created", "stst_version"} <= set(ckpt.metadata)
    assert ckpt.training == {"iteration": 7}
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


def test_half_storage_loads_as_float32_close_to_original(tmp_path):
    net = fresh_network()
    save_checkpoint(tmp_path / "h.pth", net, half=True)
    model, ckpt = load_model(tmp_path / "h.pth")
    assert ckpt.state_dict["conv1.conv2d.weight"].dtype == torch.float16
    assert model.conv1.conv2d.weight.dtype == torch.float32
    assert os.path.getsize(tmp_path / "h.pth") < 3_600_000


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.pth"
    save_checkpoint(path, fresh_network(seed=1))
    before = path.read_bytes()

    def broken_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, fresh_network(seed=2))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.pth"]  # no temporary file left behind


def test_pytorch_examples_state_dict_with_stale_running_stats(tmp_path):
    net = fresh_network(seed=3)
    state = net.state_dict()
    for key in list(state):
        if key.rsplit(".", 1)[0].split(".")[-1].startswith("in") and key.endswith(".weight"):
            base = key[: -len(".weight")]
            state[base + ".running_mean"] = torch.zeros_like(state[key])
            state[base + ".running_var"] = torch.ones_like(state[key])
    assert "res3.in2.running_var" in state and "in1.running_mean" in state
    path = tmp_path / "candy.pth"
    torch.save(state, path)
    model, ckpt = load_model(path)
    assert ckpt.arch == ArchConfig()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _RunsCode(marker)}, path)
    with pytest.raises(FileProblem, match=r"evil\.pth: refused: loading it would run code"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"just some text\n", "not a model file (it is a text file)"),
        (None, "truncated or corrupt"),
    ],
)
def test_non_model_files_get_one_line_errors(tmp_path, content, problem):
    path = tmp_path / "bad.pth"
    if content is None:  # a real checkpoint cut short
        save_checkpoint(path, fresh_network())
        content = path.read_bytes()[:4000]
    path.write_bytes(content)
    with pytest.raises(FileProblem) as info:
        load_checkpoint(path)
    assert problem in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_wrong_tensors_are_rejected(tmp_path):
    state = fresh_network().state_dict()
    state["conv1.conv2d.weight"] = torch.zeros(32, 3, 5, 5)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(FileProblem, match="weights do not fit the network"):
        load_checkpoint(tmp_path / "odd.pth")
    torch.save({"a": 1}, tmp_path / "other.pth")
    with pytest.raises(FileProblem, match="not a stst model"):
        load_checkpoint(tmp_path / "other.pth")


def test_info_counts_one_in_the_singular(tmp_path):
    path = tmp_path / "one.pth"
    save_checkpoint(path, fresh_network(), {"iterations": 1, "hardware": {"cpu": "x", "device": "cpu", "threads": 1},
                                            "dataset": {"path": "p", "images": 1}})
    shown = CliRunner().invoke(main, ["info", str(path)]).output
    assert "training  1 iteration, " in shown and "(cpu, 1 thread)" in shown and "p (1 image)" in shown


def test_a_zip_whose_names_are_not_utf8_is_a_one_line_error(tmp_path):
    """Found by the fuzz test: zipfile raises UnicodeDecodeError (not BadZipFile) on such a name."""
    path = tmp_path / "m.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/\u00e9.pkl", b"x")  # a non-ASCII name: flagged as UTF-8
    path.write_bytes(path.read_bytes().replace("\u00e9".encode(), b"\xf3\x28"))  # and no longer UTF-8
    with pytest.raises(FileProblem) as problem:
        load_checkpoint(path)
    assert str(path) in str(problem.value) and "\n" not in str(problem.value)

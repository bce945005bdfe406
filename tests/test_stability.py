"""Less flicker: the temporal training term, fine-tuning with --init, the source denoised along the flow,
statistics smoothing and dark frames."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stst.model.bundled import DEFAULT_MODEL, bundled_models
from stst.model.checkpoint import load_checkpoint, load_model, save_checkpoint
from stst.cli import main
from stst.base.fileio import file_sha256
from stst.base.imageio import read_photo
from stst.training.losses import TemporalLoss
from stst.model.network import ArchConfig, TransformerNet
from stst.video.smoothing import DARK, DARK_RISE, DarkKeeper
from statistics_smoothing import StatisticsSmoother  # scripts/: a lever the benchmark measures
from stst.video.settings import DEFAULT_DENOISE
from stst.video.temporal import FlowBlend, FlowDenoiser

from conftest import PHOTOS, STYLES, TRAIN


def photo(name="kodim23.jpg", size=64):
    return read_photo(PHOTOS / name, max_size=size).rgb[None]


def test_temporal_loss_is_zero_for_a_network_that_moves_with_the_photo_and_not_for_a_fixed_pattern():
    torch.manual_seed(0)
    x = photo()
    loss = TemporalLoss(1.0, noise=0.0)
    output, value = loss(lambda batch: batch * 0.5, x)
    assert torch.equal(output, x * 0.5)
    assert value.item() < 1e-10  # a pixelwise map commutes with any motion (inside the frame)
    pattern = torch.rand(1, 3, *x.shape[-2:])
    _, value = loss(lambda batch: batch + pattern, x)
    assert value.item() > 1e-3  # strokes fixed to the frame do not follow the picture
    _, weighted = TemporalLoss(10.0, noise=0.0)(lambda batch: batch + pattern, x)
    assert weighted.item() > value.item()


def test_training_on_the_temporal_term_lowers_it():
    torch.manual_seed(0)
    net = TransformerNet(ArchConfig(channels=8)).train()
    loss = TemporalLoss(1.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    x = torch.cat([photo(), photo("kodim05.jpg")[..., :64, :64]])[..., :40, :64]
    values = []
    for _ in range(12):
        _, value = loss(net, x)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert sum(values[-3:]) < 0.5 * sum(values[:3])


def test_cli_fine_tunes_a_model_with_the_temporal_term(tmp_path):
    start = tmp_path / "start.pth"
    save_checkpoint(start, TransformerNet(ArchConfig(channels=8)), {"note": "a start"})
    before = file_sha256(start)
    out, log = tmp_path / "steady.pth", tmp_path / "log.jsonl"
    args = ["train", "--style", str(STYLES / "starry_night.jpg"), "--dataset", str(TRAIN), "--iterations", "2",
            "--image-size", "32", "--style-size", "64", "--batch-size", "1", "--workers", "0",
            "--init", str(start), "--temporal-weight", "1e6"]
    result = CliRunner().invoke(main, [*args, "-o", str(out), "--loss-log", str(log)])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out)
    assert ckpt.arch.channels == 8  # the width comes from the model it starts from
    assert ckpt.metadata["options"]["temporal_weight"] == 1e6
    assert ckpt.metadata["init"] == {"name": "start.pth", "sha256": before}  # its iterations, where it has them
    assert all(row["temporal"] > 0 for row in map(json.loads, log.read_text().splitlines()))
    assert file_sha256(start) == before

    result = CliRunner().invoke(main, ["train", "--resume", str(out), "--temporal-weight", "5", "--iterations", "3"])
    assert result.exit_code == 2 and "--temporal-weight cannot change when resuming" in result.output
    result = CliRunner().invoke(main, [*args, "-o", str(start)])
    assert result.exit_code == 2 and "start.pth" in result.output and file_sha256(start) == before


@pytest.fixture(scope="module")
def net():
    return load_model(bundled_models()[DEFAULT_MODEL])[0]


def test_statistics_smoothing_steadies_a_dimming_shot_and_restarts_at_a_cut(net):
    first = photo()
    entered = first.clone()
    entered[..., :16, :24] = 1.0  # something bright enters the top left of the same shot: not a cut
    other = photo("kodim05.jpg")[..., :first.shape[-2], :first.shape[-1]]  # another shot
    frames = torch.cat([first, entered, other])
    with torch.inference_mode():
        plain = net(frames)
        smoother = StatisticsSmoother(net, momentum=0.9)
        smoothed = torch.cat([smoother.around(net)(frame[None]) for frame in frames])
        batched = StatisticsSmoother(net, momentum=0.9).around(net)(frames)
        unsmoothed = StatisticsSmoother(net, momentum=0.0).around(net)(frames)
    assert torch.allclose(smoothed, batched, atol=1e-5)  # a batch of frames is the frames one by one
    assert torch.allclose(unsmoothed, plain, atol=1e-5)
    assert torch.allclose(smoothed[0], plain[0], atol=1e-5)
    # Plain instance norm repaints the whole frame when its statistics move; smoothed, the rest stays steadier.
    rest = (..., slice(24, None), slice(None))
    pumping = (plain[1] - plain[0])[rest].abs().mean()
    assert (smoothed[1] - smoothed[0])[rest].abs().mean() < 0.7 * pumping
    assert torch.allclose(smoothed[2], plain[2], atol=1e-5) and smoother.cuts.count == 1


def dark_gains(frames: torch.Tensor) -> np.ndarray:
    """The gain :class:`DarkKeeper` gives each of ``frames`` (a clip, fed in batches of 4)."""
    keeper, outputs = DarkKeeper(), torch.full((4, 3, 8, 8), 0.5)
    gains = [keeper(batch, outputs[: len(batch)]).mean((1, 2, 3)) / 0.5 for batch in frames.split(4)]
    return torch.cat(gains).numpy()


def test_dark_frames_stay_dark_and_fades_go_smoothly():
    scene = photo()[0]  # kodim23, mean luma 0.43
    lights = [0.0] * 3 + np.linspace(0, 1, 12).tolist() + [1.0] * 3 + np.linspace(1, 0, 8).tolist() + [0.0] * 2
    gains = dark_gains(torch.stack([scene * light for light in lights]))
    assert gains[:3].max() == 0 and gains[-3:].max() == 0  # black in, black out
    assert gains[15:19].min() == 1  # full light: not dimmed
    steps = np.diff(gains)
    assert steps.max() <= DARK_RISE + 1e-6  # a fade from black comes up over ten frames (before: steps of 0.5)
    assert steps.min() > -0.3  # a fade to black goes down over five frames (before: the last two)
    # A cut from black lifts the dimming at once; a dark scene keeps its dimming; a dim scene is not dimmed.
    cut = dark_gains(torch.stack([scene * 0] * 2 + [scene] * 2))
    assert cut.tolist() == [0, 0, 1, 1]
    dark = dark_gains(torch.stack([scene * 0.05] * 6))
    assert np.allclose(dark, 0.43 * 0.05 / DARK, atol=0.01)
    assert dark_gains(torch.stack([scene * 0.6] * 6)).min() == 1


def test_the_bundled_default_model_is_trained_to_move_with_the_picture(net):
    """Fine-tuned with --temporal-weight: under small motion its strokes follow the photo (before it: 0.017)."""
    assert load_checkpoint(bundled_models()[DEFAULT_MODEL]).metadata["options"]["temporal_weight"] > 0
    values = []
    with torch.inference_mode():
        for path in sorted(PHOTOS.glob("*.jpg")):
            torch.manual_seed(0)
            values.append(TemporalLoss(1.0)(net, photo(path.name, 160).expand(4, -1, -1, -1))[1].item())
    assert sum(values) / len(values) < 0.0135
    shown = CliRunner().invoke(main, ["info", str(bundled_models()[DEFAULT_MODEL])]).output
    assert ", temporal 1e+07" in shown and "fine-tuned from starry_night.pth (sha256 " in shown


def test_flow_denoiser_quiets_a_still_scene_follows_motion_and_lets_a_cut_through():
    scene, other = (read_photo(PHOTOS / name).rgb.permute(1, 2, 0).mul(255).round().byte().numpy()
                    for name in ("kodim23.jpg", "kodim01.jpg"))
    rng = np.random.default_rng(0)
    denoise = FlowDenoiser(0.8)
    still = scene[64:160, 64:192]
    noisy = [np.clip(still + rng.normal(0, 6, still.shape), 0, 255).astype(np.uint8) for _ in range(12)]
    filtered = [denoise(frame).astype(float) for frame in noisy]
    assert all((f - still).std() < 0.5 * 6 for f in filtered[-4:])  # about a third of the noise is left
    pan = [scene[64:160, 64 + 2 * i: 192 + 2 * i] for i in range(8)]  # 2 pixels a frame
    step = np.abs(pan[1].astype(float) - pan[0]).mean()
    assert all(np.abs(denoise(frame).astype(float) - frame).mean() < 0.15 * step for frame in pan)  # no trail
    cut = other[64:160, 64:192]
    assert np.abs(denoise(cut).astype(float) - cut).mean() < 0.5  # a new shot passes as it is
    off = FlowDenoiser(0.0)
    assert all(np.array_equal(off(frame), frame) for frame in noisy[:3])
    with pytest.raises(ValueError, match="not in"):
        FlowDenoiser(1.0)


def test_flow_denoiser_keeps_up_with_a_fade():
    """A fade changes every pixel a little, under the gate's threshold: the carried frame follows its light
    (before, the filtered frames lagged up to 3x behind a fade, and the dark-frame dimming then jumped)."""
    still = read_photo(PHOTOS / "kodim23.jpg").rgb.permute(1, 2, 0)[64:160, 64:192].mul(255).numpy()
    rng = np.random.default_rng(0)
    denoise = FlowDenoiser(0.8)
    for level in [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 0.8, 0.5, 0.3, 0.15, 0.05, 0.01]:
        frame = np.clip(still * level + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8)
        assert denoise(frame).mean() == pytest.approx(frame.mean(), rel=0.04, abs=0.5)


def test_the_quick_blend_rides_on_the_denoisers_flow_and_follows_motion():
    """The quick path's blend takes the denoiser's flow (computed on frames shrunk to its side) instead of its
    own: each output takes the blend's weight of the previous one, carried along the motion."""
    scene = read_photo(PHOTOS / "kodim23.jpg").rgb.permute(1, 2, 0).mul(255).round().byte().numpy()
    pan = [np.ascontiguousarray(scene[64:160, 64 + 4 * i: 192 + 4 * i]) for i in range(2)]  # 4 pixels a frame
    denoise, blend = FlowDenoiser(0.8, side=64), FlowBlend(0.2)
    outputs = [torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float() / 255 for frame in pan]
    assert denoise(pan[0]) is not None and denoise.motion is None  # a first frame has no flow
    blend(pan[0], outputs[0], denoise.motion)
    denoise(pan[1])
    backward, trusted = denoise.motion
    assert backward.shape == (48, 64, 2) and trusted.mean() > 0.8  # at the flow's size, mostly reliable
    assert np.median(backward[..., 0]) == pytest.approx(2.0, abs=0.5)  # 4 pixels, at half size
    changed = blend(pan[1], torch.zeros_like(outputs[1]), denoise.motion)  # this frame's output: black
    inner = changed[:, 8:-8, 8:-16]  # the previous output, carried 4 pixels along: 0.2 of it
    assert inner.mean().item() == pytest.approx(0.2 * outputs[1][:, 8:-8, 8:-16].mean().item(), rel=0.1)


def test_the_cli_denoises_video_by_default():
    option = next(p for p in main.commands["stylize"].params if p.name == "denoise")
    assert option.default == DEFAULT_DENOISE > 0  # the CLI states it without importing torch

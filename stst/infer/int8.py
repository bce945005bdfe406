"""int8 on ONNX Runtime: the residual blocks (and Johnson's upsampling and output layers) quantized, used only where
the output stays faithful.

Static quantization (ONNX Runtime's QDQ format): per-channel int8 weights and
signed int8 activations (S8S8, the setting ONNX Runtime recommends first; the
unsigned activations of U8S8 can saturate in VPMADDUBSW on CPUs without VNNI),
activation ranges set by the 99.999th percentile on four of the photos shipped in
``stst/examples/training`` (:data:`CALIBRATION`). The convolutions of the residual blocks
are quantized (they run at a quarter of the resolution and hold 60% of the
full model's multiply-adds), and in Johnson's design the two upsampling ones
and the output layer: on 2 cores of an AMD EPYC (Zen 4, AVX-512 VNNI) the
full starry_night graph ran a 768x512 photo in 0.34 s on ONNX Runtime with
the upsampling layers quantized against 0.44 with the blocks alone, and with
the output layer too in 0.195-0.21 against 0.24 on OpenVINO,
for 0.1-0.25 more grey levels from fp32 (0.49-1.06 on the 14 bundled full and
light models). The realtime design's upsampling convolutions cost more (up to
2.07 grey levels with them) and stay in float, as does the first 9x9
convolution (1.69 on starry_night with it): quantizing every convolution cost
1.5-3.4 grey levels. Instance normalisation, padding and upsampling stay in
float.

A model's quantized graph is used only if, on the calibration photos, its
output is within :data:`FIDELITY` grey levels (mean absolute difference,
0-255) of the fp32 graph's; the verdict is kept beside the graph in
``$STST_HOME/onnx/``, so each set of weights is quantized and judged once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..base.errors import StstError, first_line
from ..base.imageio import read_photo
from .caches import cached_file, cached_graph, int8_names
from .onnxruntime_graph import GraphRunner

if TYPE_CHECKING:
    from ..model.network import TransformerNet

FIDELITY = 1.5  # grey levels (0-255), mean absolute difference from fp32 on the calibration photos
PERCENTILE = 99.999
# The shipped photos the ranges are set on and fidelity is judged on (Kodak, 384x256).
CALIBRATION = ("kodim01.jpg", "kodim03.jpg", "kodim05.jpg", "kodim23.jpg")
Run = Callable[[np.ndarray], object]  # an engine: a batch in, its output out (an array or a CPU tensor)


def calibration_photos() -> list[np.ndarray]:
    """The photos shipped for calibration, as ``(1, 3, H, W)`` 0..1 arrays."""
    folder = Path(str(resources.files("stst"))) / "examples" / "training"
    return [read_photo(folder / name).pixels[None] for name in CALIBRATION]


def grey_level_difference(reference: Run, candidate: Run, photos: Sequence[np.ndarray]) -> float:
    """Mean absolute difference in grey levels (0-255, as written) between two engines' outputs on ``photos``."""
    def levels(run: Run, photo: np.ndarray) -> np.ndarray:
        return np.round(np.clip(np.asarray(run(photo), dtype=np.float32), 0, 1) * 255)

    return float(np.mean([np.abs(levels(reference, p) - levels(candidate, p)).mean() for p in photos]))


def check_fidelity(reference: Run, candidate: Run, photos: Sequence[np.ndarray], limit: float = FIDELITY) -> float:
    """The difference of ``candidate`` from ``reference``; a :class:`StstError` when it is above ``limit``."""
    difference = grey_level_difference(reference, candidate, photos)
    if difference > limit:
        raise StstError(f"int8 differs from fp32 by {difference:.2f} grey levels on average, more than {limit:g}")
    return difference


def _quantize(fp32: Path, target: Path, photos: Sequence[np.ndarray]) -> None:
    """Quantize the graph at ``fp32`` into ``target``, quietly: the quantizer prints its progress on stdout
    (which may be carrying an image, ``stst stylize - -o -``) and logs hints on the root logger."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(photos)

        def get_next(self) -> dict | None:
            photo = next(self.left, None)
            return None if photo is None else {"image": photo}

    graph = onnx.load(str(fp32)).graph
    # The residual blocks of both designs, as torch's exporter names them, and Johnson's upsampling and output layers
    quantized = ("/res", "/blocks/", "/deconv1/", "/deconv2/", "/deconv3/")
    others = [node.name for node in graph.node if node.op_type == "Conv" and not any(q in node.name for q in quantized)]
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
        root.setLevel(logging.ERROR)
        try:
            prepared = Path(scratch) / "prepared.onnx"
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(target), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv"], nodes_to_exclude=others,
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": PERCENTILE})
        finally:
            root.setLevel(level)


def quantized_graph(model: TransformerNet) -> Path:
    """The model's int8 graph, made and judged the first time; a :class:`StstError` when it is not faithful."""
    name, unfaithful = int8_names(model)
    return faithful_graph(name, unfaithful, lambda: cached_graph(model))


def faithful_graph(name: str, unfaithful: str, fp32: Callable[[], Path]) -> Path:
    """The int8 graph cached as ``name``, quantized from the graph ``fp32()`` gives and judged the first time (the
    verdict against it kept as ``unfaithful``); a :class:`StstError` when it is not faithful. Torch-free: the express
    lane quantizes a model's graph without it."""
    verdict = cached_file(unfaithful)
    if verdict is not None:
        raise StstError(verdict.read_text().strip())

    def make(target: Path) -> None:  # only the first time: a cached int8 graph needs no fp32 graph or export
        graph = fp32()
        photos = calibration_photos()
        try:
            _quantize(graph, target, photos)
        except Exception as exc:  # the quantizer's own errors: then there is simply no int8 engine
            raise StstError(f"int8 quantization failed ({first_line(exc)})") from None
        try:
            check_fidelity(GraphRunner(graph), GraphRunner(target), photos, FIDELITY)
        except StstError as exc:  # remembered, so that these weights are judged once
            said = f"{exc}\n"
            cached_file(unfaithful, lambda path: path.write_text(said))
            raise

    return cached_file(name, make)

"""A clip's frames for the encoder made where its network runs (a GPU): yuv420p, as FFmpeg makes it from rgb24.

The encoder takes yuv420p. On the CPU's path the writer thread hands it rgb24 frames, which FFmpeg's swscale
converts: at 1080p, making the frame took 4.5 ms (a copy that holds the GIL) and converting it 5.7 ms, on one Zen 4
core, in the one thread that feeds the encoder: a 100-frames-a-second ceiling before x264 runs. Here the device
converts the stylized frames, rounded to bytes as the CPU's are, with swscale's arithmetic: BT.601 at limited range,
chroma averaged over pixel pairs across and filtered (1, 3, 3, 1) / 8 down, edges repeated. Within one level of
swscale's planes (tested on the CPU), and half the bytes cross back; the writer makes the frame from its planes
(1 ms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# BT.601 at limited range: the rows give Y, Cb and Cr from R, G and B in 0..255; then the offsets.
_BT601 = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
_OFFSETS = (16.0, 128.0, 128.0)
_DOWN = (1.0, 3.0, 3.0, 1.0)  # swscale's vertical chroma filter at 2:1, over 8


def yuv420p(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images in 0..1 (H and W even) as yuv420p: (N, 1, H * 3 / 2, W) in 0..1 (levels / 255), the Y,
    U and V planes one after the other as FFmpeg lays them out (``VideoFrame.from_ndarray(..., "yuv420p")``), for
    :func:`stst.infer.device_pixels.to_bytes`. Not-finite values stay so (it flags them)."""
    n, _, h, w = images.shape
    rgb = images.float().clamp(0.0, 1.0).mul(255.0).round()  # the bytes the CPU's path converts
    matrix = torch.tensor(_BT601, dtype=rgb.dtype, device=rgb.device) / 255.0
    offsets = torch.tensor(_OFFSETS, dtype=rgb.dtype, device=rgb.device)
    yuv = torch.einsum("ck,nkhw->nchw", matrix, rgb) + offsets[:, None, None]
    pairs = (yuv[:, 1:, :, 0::2] + yuv[:, 1:, :, 1::2]) / 2
    down = torch.tensor(_DOWN, dtype=rgb.dtype, device=rgb.device).div(8).view(1, 1, 4, 1).repeat(2, 1, 1, 1)
    chroma = F.conv2d(F.pad(pairs, (0, 0, 1, 1), mode="replicate"), down, stride=(2, 1), groups=2)
    planes = torch.cat([yuv[:, 0].flatten(1), chroma[:, 0].flatten(1), chroma[:, 1].flatten(1)], 1)
    return planes.view(n, 1, h * 3 // 2, w).div_(255.0)

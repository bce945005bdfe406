"""Photos over the bus as uint8, with their scaling, clamping and rounding on the network's device: a GPU's path.

The float path hands a network (N, 3, H, W) float32 in 0..1 and takes the same back: for a 1080p photo 25 MB each
way against 6 MB as uint8, pinned anew on every call and converted on the CPU, whose cores a GPU run needs for
decoding and encoding. Here the host side holds what the codecs hold, uint8 (N, H, W, 3); the device divides by 255,
and clamps, scales and rounds its output as :func:`stst.base.imageio.to_uint8` does (the same float32 steps, so the
same bytes where the network's output is the same). On CUDA the pinned buffers are kept per shape and reused, the copy
in runs on a stream of its own (the next batch crosses while the network runs) and the copy out is waited for only when
the outputs are taken (:meth:`Pending.result`). Runs on any torch device: CI tests it on the CPU.

JPEGs may cross as their files instead (:meth:`DevicePixels.decode`): a tenth of the bytes, decoded by nvJPEG on the
GPU, which leaves the CPU's cores the encoding. nvJPEG's IDCT and chroma upsampling are not libjpeg-turbo's, so its
pixels may differ from Pillow's by a few levels; ``scripts/bench_gpu.py`` prints by how much. Where it fails (a
torchvision without nvJPEG, a file it does not take) the batch is decoded on the CPU and the run goes on there.
nvJPEG writes its outputs without waiting for the work queued on the caller's stream (reported against torchvision
and TorchCodec on an H100, 2026), and torch's allocator hands a decode the memory that the network still running
will read: so the device decodes on a stream of its own, whose memory nothing else touches (:meth:`decode`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..base.errors import first_line
from ..base.imageio import CodedPhoto, DecodeFailed

# Pinned host buffers kept per shape and direction: a batch in flight and the one being filled.
RING = 2
# A batch of photos as decoded: one array (N, H, W, 3) uint8 or (N, 3, H, W) float32, or a list of the photos.
Photos = np.ndarray | list[np.ndarray]


class Pending:
    """A batch's outputs on their way back to the host: :meth:`result` waits for them."""

    def __init__(self, host: torch.Tensor, finite: torch.Tensor, done: torch.cuda.Event | None) -> None:
        self.host, self.finite, self.done = host, finite, done

    def result(self) -> list[np.ndarray | None]:
        """Each image as uint8 (H, W, 3), or None where the network's output was not finite (NaN or infinity: a
        broken model, fp16 overflow), which rounding to uint8 would hide. The arrays are the caller's own: the
        pinned buffer they crossed in is reused."""
        if self.done is not None:
            self.done.synchronize()
        pixels = self.host.numpy()
        copy = self.done is not None  # a pinned ring buffer; on the CPU the tensor is this batch's alone
        return [(np.array(image) if copy else image) if ok else None
                for image, ok in zip(pixels, self.finite.tolist())]


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) as (N, 3, H, W) float32 in 0..1: in channels_last memory order, which cuDNN's convolutions
    prefer (``.contiguous()`` gives the other layout)."""
    return pixels.permute(0, 3, 1, 2).float().div_(255.0)


def to_bytes(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) images in about 0..1 as uint8 (N, H, W, 3), clamped and rounded in float32 as
    :func:`stst.base.imageio.to_uint8` does, and whether each image is finite."""
    finite = torch.isfinite(images).flatten(1).all(1)
    scaled = images.float().clamp(0.0, 1.0).mul_(255.0).round_()  # a new tensor: the images stay
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).contiguous(), finite


# Pillow's exif_transpose as tensor steps on (C, H, W): each EXIF orientation as whether it transposes, then its flips.
_UPRIGHT = {2: (False, (-1,)), 3: (False, (-2, -1)), 4: (False, (-2,)), 5: (True, ()), 6: (True, (-1,)),
            7: (True, (-2, -1)), 8: (True, (-2,))}


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """A decoded (C, H, W) image turned upright as Pillow's ``ImageOps.exif_transpose`` turns it."""
    transposes, flips = _UPRIGHT.get(orientation, (False, ()))
    image = image.transpose(-2, -1) if transposes else image
    return image.flip(flips) if flips else image


def decode_jpegs(coded: list[CodedPhoto], device: torch.device) -> list[torch.Tensor]:
    """JPEG files decoded to uint8 (3, H, W) on ``device`` (nvJPEG, batched, on CUDA; libjpeg-turbo on a CPU),
    upright; :class:`DecodeFailed` where the decoder refuses any of them or disagrees with a header's size."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(photo.data), dtype=torch.uint8) for photo in coded]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except (RuntimeError, ValueError) as exc:
        raise DecodeFailed(first_line(exc)) from None
    images = [upright(image, photo.orientation) for image, photo in zip(images, coded)]
    if any(tuple(image.shape[1:]) != photo.size for image, photo in zip(images, coded)):
        raise DecodeFailed("a decoded size differs from the file's header")
    return images


def _stacked(images: list[torch.Tensor]) -> torch.Tensor:
    """Decoded (3, H, W) images of one size as one (N, H, W, 3) batch."""
    return torch.stack([image.permute(1, 2, 0) for image in images])


class DevicePixels:
    """Batches of uint8 photos onto ``device`` and their outputs back, through reused pinned buffers on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self._decode_stream = torch.cuda.Stream(device) if self.cuda else None
        self._rings: dict[tuple, list[tuple[torch.Tensor, torch.cuda.Event | None]]] = {}
        self._turns: dict[tuple, int] = {}

    def _buffer(self, key: tuple, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """The next pinned buffer of the ring for ``key``, once its last copy has finished."""
        ring = self._rings.setdefault(key, [])
        turn = self._turns[key] = (self._turns.get(key, -1) + 1) % RING
        if turn == len(ring):
            ring.append((torch.empty(shape, dtype=dtype, pin_memory=True), None))
        buffer, event = ring[turn]
        if event is not None:
            event.synchronize()
        return buffer

    def _mark(self, key: tuple, event: torch.cuda.Event) -> None:
        ring = self._rings[key]
        turn = self._turns[key]
        ring[turn] = (ring[turn][0], event)

    def upload(self, pixels: Photos) -> torch.Tensor:
        """A batch as the network takes it on the device, (N, 3, H, W) float32 in 0..1 (channels_last memory order):
        uint8 (N, H, W, 3) photos, or float32 (N, 3, H, W) ones as they are (16-bit sources). On CUDA a list of uint8
        (H, W, 3) photos is copied once, each straight into the pinned buffer: stacking 8 1080p photos first took
        7 ms more (Zen 4), and up to 100 ms where the stack's 50 MB were new pages."""
        if isinstance(pixels, list) and not (self.cuda and pixels[0].dtype == np.uint8):
            pixels = np.stack(pixels)  # only a GPU's uint8 photos are copied one by one
        if pixels[0].dtype != np.uint8:
            return torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, torch.float32)
        if not self.cuda:
            return to_unit(torch.from_numpy(pixels))
        shape = (len(pixels), *pixels[0].shape)
        key = ("in", shape)
        host = self._buffer(key, shape, torch.uint8)
        for slot, image in zip(host.numpy(), pixels):
            np.copyto(slot, image)
        with torch.cuda.stream(self._copy_stream):
            on_device = host.to(self.device, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record()
        self._mark(key, copied)
        return to_unit(self._to_network(on_device, self._copy_stream))

    def decode(self, coded: list[CodedPhoto]) -> torch.Tensor:
        """JPEG files decoded on the device (:func:`decode_jpegs`) as :meth:`upload` hands a batch over; raises
        :class:`DecodeFailed`. On CUDA the decoder's outputs are allocated on a stream of its own, drained first, so
        the memory it may write at once held nothing that queued work still reads (blocks freed by the network's
        stream stay in that stream's pool); the batch is then marked in use by the network's stream, which waits
        for it, so no later decode is handed its memory early."""
        if not self.cuda:
            return to_unit(_stacked(decode_jpegs(coded, self.device)))
        self._decode_stream.synchronize()  # its own last batch stacked: only nvJPEG's work was ever queued on it
        with torch.cuda.stream(self._decode_stream):
            batch = _stacked(decode_jpegs(coded, self.device))
        return to_unit(self._to_network(batch, self._decode_stream))

    def _to_network(self, tensor: torch.Tensor, side: torch.cuda.Stream) -> torch.Tensor:
        """``tensor``, made on stream ``side``, handed to the network's (current) stream: it waits for ``side``, and
        the allocator keeps the tensor's memory until the network's stream is done with it."""
        network = torch.cuda.current_stream(self.device)
        network.wait_stream(side)
        tensor.record_stream(network)
        return tensor

    def download(self, images: torch.Tensor) -> Pending:
        """The network's (N, 3, H, W) output on its way back as uint8 photos; the copy runs behind the caller."""
        pixels, finite = to_bytes(images)
        if not self.cuda:
            return Pending(pixels, finite, None)
        key = ("out", tuple(pixels.shape))
        host = self._buffer(key, tuple(pixels.shape), torch.uint8)
        host.copy_(pixels, non_blocking=True)
        flags = finite.to("cpu", non_blocking=True)  # a few bytes: pinned by torch for the copy
        done = torch.cuda.Event()
        done.record()
        self._mark(key, done)
        return Pending(host, flags, done)


class Ready(Pending):
    """Outputs already on the host (a batch that took the float path: tiles, huge photos)."""

    def __init__(self, outputs: list[np.ndarray | None]) -> None:
        self.outputs = outputs

    def result(self) -> list[np.ndarray | None]:
        return self.outputs

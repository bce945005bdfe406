"""Bounds that stst checks before allocating memory for untrusted input (no torch import, for a fast CLI)."""

# Images above this many pixels are refused from their header, before decoding
# (``--max-pixels`` raises it). It lets 100 MP camera photos through; a
# 40000x40000 "decompression bomb" (1600 MP, 200 KB on disk, 5 GB decoded) is
# refused in one line.
DEFAULT_MAX_PIXELS = 120_000_000

# Model files: 16x the default network width; a crafted file declaring 10^7
# channels is refused instead of allocating gigabytes.
MAX_CHANNELS = 512
MAX_STYLE_SIDE = 16384

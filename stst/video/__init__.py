"""Clips: decoding and encoding with PyAV, the flow denoiser and blend, dark frames kept dark, flicker.

Imports :mod:`stst.infer`, :mod:`stst.model` and :mod:`stst.base`.
"""

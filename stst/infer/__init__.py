"""The inference engine: eager torch or ONNX Runtime, the precision choice, tiling and the look options.

Imports :mod:`stst.model` and :mod:`stst.base`.
"""

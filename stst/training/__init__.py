"""Training, distilling and judging style models against VGG16 perceptual losses.

May import :mod:`stst.infer` (evaluate and distill stylize), :mod:`stst.model` and :mod:`stst.base`;
never :mod:`stst.video`. Named ``training``, not ``train``, so that ``stst.train`` stays the function.
"""

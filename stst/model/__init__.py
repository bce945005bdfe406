"""The style network, its checkpoint format, the bundled models, export and ``stst info``.

Imports only :mod:`stst.base`.
"""

"""The style network, its checkpoint format, the bundled models, export and ``stst info``.

Imports only :mod:`stst.base`.
"""

# The layers exports are made of (3: the rewrites of :mod:`stst.model.rewrite`, with the realtime design's
# full-resolution layers on phases; torch engines on CPUs run the realtime design so too; 4: the tile graphs too;
# 5: Johnson's int8 graphs quantize the two upsampling convolutions too).
# Part of the names of cached graphs and of the keys of measured and recorded engine choices, so that those made
# with an earlier form are made anew rather than reused. Here, where no torch is imported, because the express lane keys on it too.
GRAPH_FORM = 5

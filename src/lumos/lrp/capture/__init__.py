"""Capture and constant folding: a private, traced, canonical copy of the user's model.

:func:`lumos.lrp.capture.prepare.prepare` (also ``lumos.lrp.prepare``) captures the model as a
graph, folds what is constant, rewrites every operation into the op vocabulary
(:mod:`lumos.lrp.ops`) and checks that the result reproduces the model.
"""

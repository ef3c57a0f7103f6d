"""The op vocabulary the rules act on: modules that stand for every operation of a prepared model.

Preparation rewrites each captured operation into one of these (:mod:`lumos.lrp.ops.canonize`):
``torch.nn`` layers, activations and pooling, and lumos's own :mod:`~lumos.lrp.ops.layers`
(sums, concatenation, rearrangements, means, affine maps, resampling),
:mod:`~lumos.lrp.ops.products`, :mod:`~lumos.lrp.ops.attention`, :mod:`~lumos.lrp.ops.norms`
and :mod:`~lumos.lrp.ops.constants`. A module's type tells the composite which rule applies.
"""

"""Concept Relevance Propagation: heatmaps conditioned on concepts, and concept relevances.

``CRP(model, composite)`` runs LRP (the same prepared model, rules and start relevance as
:class:`lumos.LRP`) with the backward pass split at the concept layers: from the output to the
highest layer of a condition, where every channel outside the condition's concept is set to
zero, then on to the next condition layer, and finally to the input. Relevance that bypasses a
condition layer (a residual shortcut around it) is left out, so a conditional heatmap holds
only the relevance that flows through all of the condition's concepts.

Many conditions are computed in one batched pass: every sample is repeated once per condition
and each row gets its own channel mask (at most ``batch_size`` rows per pass). The passes
themselves are :mod:`lumos.crp.passes`, gathered into results by :mod:`lumos.crp.gather`;
:class:`CRP` turns arguments into conditions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import Target, TargetLike
from lumos.crp import conditions as cond
from lumos.crp import gather, seam
from lumos.crp.passes import ConditionalPasses, default_rows
from lumos.crp.results import ConceptHeatmaps
from lumos.lrp import composites as comp

#: Statistics of a concept layer :meth:`CRP.statistics` returns, each ``(N, channels)``.
STATISTICS = ("relevance", "relevance_max", "activation", "activation_max")


class ConceptLayers:
    """The concept layers of a model as :class:`CRP` reads them (its parameters): which layers
    there are, where each is read, its channels and shape, and conditions checked against them.
    """

    def __init__(self, model: nn.Module, composite: comp.Composite | None = None,
                 channel_dims: dict[str, int] | None = None) -> None:
        from lumos.lrp.engine import LRP

        self.lrp = LRP(model, composite)
        self.model = model
        self.composite = self.lrp.composite
        self.channel_dims = dict(channel_dims or {})
        #: layer shapes by input size (:meth:`shapes`)
        self._shapes: dict[tuple[object, ...], dict[str, tuple[int, ...]]] = {}

    # ---- layers --------------------------------------------------------------------------
    def layers(self, example: Tensor) -> list[str]:
        """Module paths that can be concept layers for inputs like ``example``, input first."""
        return seam.layer_names(seam.program(self.lrp, check_input(example)))

    def layer(self, name: str, example: Tensor) -> seam.Layer:
        """Where concept layer ``name`` is read for inputs like ``example``."""
        prog = seam.program(self.lrp, check_input(example))
        return seam.layers(prog, [name], self.channel_dims)[name]

    def channels(self, name: str, example: Tensor) -> int:
        """How many concepts (channels) layer ``name`` has for inputs like ``example``."""
        return self.shapes([name], example)[name][0]

    def shapes(self, names: Sequence[str], example: Tensor) -> dict[str, tuple[int, ...]]:
        """Per layer: ``(channels, *positions)``, the output shape without the batch, with
        the concept dimension first."""
        x = check_input(example)[:1]
        key = (tuple(x.shape[1:]), x.dtype, x.device)
        known = self._shapes.setdefault(key, {})
        missing = [name for name in dict.fromkeys(names) if name not in known]
        if missing:  # one forward pass of one sample, once per input size
            known.update(gather.layer_shapes(self.lrp, self._layers(missing, x), x))
        return {name: known[name] for name in names}

    def _layers(self, names: Iterable[str], x: Tensor) -> dict[str, seam.Layer]:
        prog = seam.program(self.lrp, x)
        return seam.layers(prog, list(dict.fromkeys(names)), self.channel_dims)

    # ---- conditions ----------------------------------------------------------------------
    def _conditions(self, x: Tensor, layer: str | None,
                    concepts: Iterable[cond.ConceptLike] | None,
                    conditions: Sequence[cond.ConditionLike] | None) -> list[cond.Condition]:
        canon = cond.from_arguments(layer, concepts, conditions)
        names = [canon] if isinstance(canon, str) else sorted({n for c in canon for n in c})
        counts = {name: shape[0] for name, shape in self.shapes(names, x).items()}
        if isinstance(canon, str):
            return cond.every_channel(canon, counts[canon])
        cond.check_range(canon, counts)
        return canon


class CRP(ConceptLayers):
    """Concept Relevance Propagation (Achtibat et al., 2023) on lumos's LRP engine.

    Parameters
    ----------
    model : nn.Module
        Any model :class:`lumos.LRP` explains (CNNs, ViTs); it is never modified.
    composite : Composite, optional
        Which LRP rule where (default ``EpsilonPlus()``; ``CPLRP()`` or ``AttnLRP()`` for
        transformers).
    channel_dims : dict, optional
        Which dimension of a layer's output holds its concepts, by layer name, where the
        default guess is wrong: channels first (dimension 1) behind convolutions and pooling,
        last behind linear layers and LayerNorm (a transformer's token stream).

    Examples
    --------
    >>> crp = CRP(model, composite=composites.EpsilonPlus())
    >>> h = crp.attribute(x, target=t, layer="features.28", concepts=[3, 17])  # (N, 2, C, H, W)
    >>> r = crp.concept_relevance(x, target=t, layers=["features.28"])      # {layer: (N, 512)}
    """

    def __init__(self, model: nn.Module, composite: comp.Composite | None = None,
                 channel_dims: dict[str, int] | None = None) -> None:
        super().__init__(model, composite, channel_dims)
        self._passes = ConditionalPasses(self.lrp, self._layers)

    # ---- conditional heatmaps ------------------------------------------------------------
    def attribute(self, inputs: Tensor, target: TargetLike = None, layer: str | None = None,
                  concepts: Iterable[cond.ConceptLike] | None = None,
                  conditions: Sequence[cond.ConditionLike] | None = None,
                  batch_size: int | None = None) -> Tensor:
        """Conditional heatmaps, ``(N, K, *inputs.shape[1:])`` for ``K`` concepts/conditions.

        Parameters
        ----------
        inputs : Tensor
            A batch ``(N, ...)``.
        target : int, sequence, LongTensor, callable or None
            What to explain, as for :meth:`lumos.LRP.attribute`.
        layer, concepts :
            Concepts of one layer: ``layer="features.28", concepts=[3, 17, [4, 5]]`` (a list
            is one concept of several channels); ``concepts`` left out: every channel.
        conditions :
            Or a list of conditions, each naming a concept in one or more layers
            (``[{"features.28": 3, "features.21": 7}]``): only the relevance that flows
            through all of them.
        batch_size : int, optional
            Rows (sample × condition) per forward/backward pass; default from the input size.
        """
        x = check_input(inputs)
        canon = self._conditions(x, layer, concepts, conditions)
        return gather.conditioned(self._passes, x, Target(target, len(x)), canon,
                                  batch_size)[0]

    def explain(self, inputs: Tensor, target: TargetLike = None, layer: str | None = None,
                concepts: Iterable[cond.ConceptLike] | None = None,
                conditions: Sequence[cond.ConditionLike] | None = None,
                batch_size: int | None = None) -> ConceptHeatmaps:
        """:meth:`attribute`'s heatmaps with, per condition, the relevance that flows
        through its concept and where in the concept's layer it does (see
        :class:`~lumos.crp.results.ConceptHeatmaps`)."""
        x = check_input(inputs)
        canon = self._conditions(x, layer, concepts, conditions)
        heat, total, positions = gather.conditioned(self._passes, x, Target(target, len(x)),
                                                    canon, batch_size)
        return ConceptHeatmaps(heatmaps=heat, relevance=total, positions=positions,
                               conditions=canon, layers=[self._top(c, x) for c in canon])

    def explain_each(self, inputs: Tensor, target: TargetLike,
                     conditions: Sequence[cond.ConditionLike], batch_size: int | None = None,
                     ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Sample ``i`` under condition ``i`` only (``len(conditions) == N``): heatmaps
        ``(N, *input)``, the relevance through each condition's concept ``(N,)`` and, per
        sample, that relevance per position of the condition's highest layer."""
        x = check_input(inputs)
        canon = self._conditions(x, None, None, conditions)
        if len(canon) != len(x):
            raise ValueError(f"explain_each needs one condition per sample: {len(x)} samples, "
                             f"{len(canon)} conditions")
        return gather.each(self._passes, x, Target(target, len(x)), canon,
                           batch_size or default_rows(x))

    def _top(self, condition: cond.Condition, x: Tensor) -> str:
        wanted = self._layers(condition, x)
        return max(wanted.values(), key=lambda lay: lay.position).name

    def concept_relevance(self, inputs: Tensor, target: TargetLike = None,
                          layers: Sequence[str] | str = (),
                          conditions: Sequence[cond.ConditionLike] | None = None,
                          batch_size: int | None = None) -> dict[str, Tensor]:
        """Relevance of every concept of each layer: ``{layer: (N, channels)}``.

        A concept's relevance is the sum of the layer's relevance over the concept's
        positions (the spatial positions of a convolution's channel, the tokens of a
        transformer feature). With ``conditions``, ``{layer: (N, K, channels)}``: the
        relevance as the backward pass conditioned on each of the ``K`` conditions carries
        it to that layer (how a concept above splits into the concepts of a layer below).
        """
        names = [layers] if isinstance(layers, str) else list(layers)
        if not names:
            raise ValueError("name at least one layer: layers=['features.28', ...]")
        x = check_input(inputs)
        tgt = Target(target, len(x))
        if conditions is None:
            stats = self.statistics(x, tgt, names, batch_size, which=("relevance",))
            return {name: s["relevance"] for name, s in stats.items()}
        canon = self._conditions(x, None, None, conditions)
        return gather.layer_relevance(self._passes, x, tgt, canon, names, batch_size)

    # ---- per-layer statistics (the store) -----------------------------------------------
    def statistics(self, inputs: Tensor, target: TargetLike | Target, layers: Sequence[str],
                   batch_size: int | None = None,
                   which: Sequence[str] = STATISTICS, heatmap: bool = False,
                   ) -> dict[str, dict[str, Tensor]]:
        """Per layer and sample: concept relevance (sum over positions), its largest value
        at one position, and the activation's sum and maximum over positions; with
        ``heatmap``, also the unconditional LRP heatmap (key ``""``, ``{"heatmap": ...}``)
        from the same backward pass. Every entry ``(N, channels)``."""
        x = check_input(inputs)
        tgt = target if isinstance(target, Target) else Target(target, len(x))
        return gather.statistics(self._passes, x, tgt, self._layers(layers, x),
                                 batch_size or default_rows(x), which, heatmap)

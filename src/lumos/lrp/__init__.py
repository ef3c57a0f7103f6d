"""Layer-wise Relevance Propagation: rules, composites, model preparation and the engine.

- :mod:`lumos.lrp.rules`: each rule as data (Epsilon, Gamma, AlphaBeta, ZPlus, ZBox, Flat,
  WSquare, Pass, Norm, Gradient);
- :mod:`lumos.lrp.composites`: which rule where (EpsilonPlus, EpsilonGammaBox,
  EpsilonAlpha2Beta1, EpsilonPlusFlat, EpsilonAlpha2Beta1Flat, Epsilon, LayerMap, NameMap);
- :mod:`lumos.lrp.prepare`: a torch.fx copy of the model with BatchNorm folded and functional
  operations turned into modules;
- :mod:`lumos.lrp.engine`: :class:`~lumos.lrp.engine.LRP`, relevance in one forward and one
  backward pass (also exported as ``lumos.LRP``).
"""

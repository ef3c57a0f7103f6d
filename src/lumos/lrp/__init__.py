"""Layer-wise Relevance Propagation: rules, composites, model preparation and the engine."""

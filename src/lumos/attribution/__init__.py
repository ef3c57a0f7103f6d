"""Gradient-based attribution: Integrated Gradients and the simple gradient family."""

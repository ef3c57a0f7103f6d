"""Metrics that measure how faithful, sane and robust an explanation is."""

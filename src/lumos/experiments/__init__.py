"""The study as config-driven pipelines."""

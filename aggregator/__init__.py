"""aggregator: poll AI/ML blogs, pick the posts for a monthly digest, and draft it."""

__version__ = "0.1.0"

"""Encoders: anything with ``encode(texts, *, role) -> float32 (n, dim)``, ``name``,
``dim`` and ``fingerprint()``. See ``base.Encoder``."""

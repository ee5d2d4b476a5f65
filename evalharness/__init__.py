"""evalharness: how good is this text encoder, and is it better than that one?

``evalharness.evaluate(suite, ...) -> Results`` is the one entry point (see
``evalharness.api``); it is imported lazily so that ``import evalharness`` and the CLI's
``--help`` stay fast.
"""

__version__ = "0.1.0"

__all__ = ["Results", "__version__", "evaluate"]


def __getattr__(name: str):
    if name in ("evaluate", "Results"):
        from evalharness import api

        return getattr(api, name)
    raise AttributeError(f"module 'evalharness' has no attribute {name!r}")

"""evalharness: how good is this text encoder, and is it better than that one?"""

__version__ = "0.1.0"

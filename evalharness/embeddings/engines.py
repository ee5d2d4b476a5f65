"""Engines: who encodes the cache misses of the embed stage.

The embed stage (``planner.embed``) decides *what* to encode: the de-duplicated texts of
one role key that missed the cache, longest first. An engine decides *where*: it yields
the vectors of those texts block by block, and the planner validates every block
(``check_output``), writes it to the cache and places it in the run's matrix. So an
engine never touches the cache or the metrics, and whatever it delivered before a
failure or a Ctrl-C is kept.

``local`` (the default) encodes in this process. Another engine (``ray``) plugs in by
implementing the same two members.
"""

from __future__ import annotations

from typing import Any, Iterator, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


@runtime_checkable
class Engine(Protocol):
    name: str

    def encode_blocks(self, encoder, texts: list[str], *, role: str,
                      block_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, vectors)``: the vectors of ``texts[start:stop]``.

        Blocks may arrive in any order; together they cover every text exactly once.
        """
        ...

    def describe(self) -> dict:
        """What results.json records about the engine (name, workers, devices)."""
        ...


class LocalEngine:
    """Encode in this process, one block after another."""

    name = "local"

    def encode_blocks(self, encoder, texts: list[str], *, role: str,
                      block_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """An encoder with ``prefetch(texts, role=)`` is handed the next block before it
        encodes the current one (it may prepare it meanwhile, e.g. tokenise it)."""
        prefetch = getattr(encoder, "prefetch", None)
        for start in range(0, len(texts), block_size):
            stop = min(start + block_size, len(texts))
            if prefetch is not None and stop < len(texts):
                prefetch(texts[stop:stop + block_size], role=role)
            yield start, stop, encoder.encode(texts[start:stop], role=role)

    def describe(self) -> dict:
        return {"engine": self.name, "workers": 1}


def encodes_remotely(engine, encoder) -> bool:
    """True when ``engine`` encodes ``encoder``'s misses on other workers (then the driver
    needs no model, and no token cache, for them)."""
    remote = getattr(engine, "encodes_remotely", None)
    return remote is not None and bool(remote(encoder))


def block_size_for(encoder) -> int:
    """Texts per block handed to the engine (the planner writes blocks to the cache in
    groups of about planner.FLUSH_BYTES)."""
    batch = getattr(getattr(encoder, "options", None), "batch_size", None) or 32
    return max(256, int(batch) * 16)


class ExecutionConfig(BaseModel):
    """``execution:`` of a suite (and ``--engine``/``--ray-address`` on the CLI)."""

    model_config = ConfigDict(extra="forbid")
    engine: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="Ray cluster address ('auto', "
                                "'ray://host:10001'); none: start a local Ray for the run")
    actors: int | None = Field(None, ge=1, description="encoder actors (default: one per "
                               "GPU of the cluster, else 2)")
    gpus_per_actor: float | None = Field(None, ge=0)
    cpus_per_actor: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1, description="texts per Ray batch")
    max_retries: int = Field(3, ge=0, description="restarts of a failed actor / task")
    runtime_env: dict[str, Any] | None = Field(
        None, description="Ray runtime_env of the run's job (e.g. pip: [mypkg], "
        "working_dir: ., env_vars: {...}) so py: encoders import on the workers")


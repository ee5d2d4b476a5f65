"""The ``ray`` engine: encode the embed stage's cache misses on a Ray cluster.

The planner hands the engine the de-duplicated misses of one role key, longest first
(``planner.embed``). This engine turns them into a Ray Dataset of ``(pos, text)`` rows,
cut into contiguous ranges of ``batch_size`` texts (one Ray block each), and runs
``map_batches`` over an actor pool: each actor rebuilds the encoder once from a picklable
recipe (``WorkerRecipe``: the encoder's class, id, target and options, plus a variant's
model settings), checks that its fingerprint equals the driver's, and encodes whole
blocks with the encoder's own ``encode`` (token-budget batches on CPU, as the local
path). Vectors stream back with ``iter_batches``; rows are put back into their ranges on
the driver and every completed range is yielded as ``(start, stop, vectors)``, which the
planner validates and writes to the cache. So the driver holds at most the ranges in
flight, and what reached the cache survives a failure or a Ctrl-C.

Where it runs: ``address`` None starts a local Ray instance for the run (shut down by
``close()``), unless this process is already connected to Ray, which is then used and
left running; ``auto`` / ``HOST:PORT`` / ``ray://HOST:10001`` connect to a cluster (an
address that does not answer is a ``UserError`` naming it).

Which encoders run remotely: those built from a spec (``st``, ``hf``, ``minilm``,
``mteb``, ``random``, ``py`` when its module imports on the workers) and variants of
them. ``http:`` endpoints (remote already) and ``tfidf-lsa`` (fitted on the run's texts)
are encoded on the driver, and ``describe()`` says so.

Faults (set explicitly, from ``ExecutionConfig.max_retries``): an actor whose process
dies is restarted up to ``max_retries`` times and its unfinished batch re-run
(``max_restarts`` / ``max_task_retries``); an exception raised by an encoder is not
retried (the same input would fail again) and fails the run with the encoder's message;
Ray Data never drops a failed block (``max_errored_blocks = 0``).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from evalharness.errors import EncoderError, UserError

INSTALL_HINT = "pip install 'evalharness[ray]'"
CONNECT_TIMEOUT_S = 10.0
DRIVER_ONLY = {
    "evalharness.encoders.http:HttpEncoder":
        "http: endpoints are called from the driver (they are remote already)",
    "evalharness.encoders.tfidf_lsa:TfidfLsaEncoder":
        "tfidf-lsa is fitted on the run's texts on the driver",
}
TORCH_CLASSES = {
    "evalharness.encoders.sentence_transformer:SentenceTransformerEncoder",
    "evalharness.encoders.hf:HFEncoder",
    "evalharness.encoders.mteb_model:MtebEncoder",
}


def import_ray():
    """``ray`` and ``ray.data``, or a UserError with the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UserError(f"the ray engine needs Ray Data, which is not installed ({exc})",
                        field="execution.engine",
                        hint=f"{INSTALL_HINT}, or run with --engine local") from None
    return ray


# -- rebuilding an encoder on a worker -------------------------------------------------
def _class_path(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


@dataclass(frozen=True)
class WorkerRecipe:
    """Everything a worker needs to build the encoder the driver holds (picklable)."""

    cls: str  # "module:Class" of a registered encoder type
    name: str
    target: str | None
    options: Any  # the encoder's pydantic Options (pickles with its set fields)
    spec_string: str
    fingerprint: str  # the driver's: the worker's encoder must have the same
    variant: dict | None = None  # {"name", "base_id", "options", "spec_string"}

    @property
    def torch(self) -> bool:
        return self.cls in TORCH_CLASSES

    @property
    def label(self) -> str:
        return self.spec_string or self.cls


def recipe_for(encoder) -> WorkerRecipe | str:
    """A recipe for ``encoder`` (what the planner embeds with: a spec-built encoder or a
    variant's source view), or the reason it is encoded on the driver."""
    from evalharness import registry
    from evalharness.encoders.variants import variant_of

    variant = variant_of(encoder)
    base = variant.base if variant is not None else encoder
    path = _class_path(base)
    if path in DRIVER_ONLY:
        return DRIVER_ONLY[path]
    if path not in set(registry.ENCODERS.values()):
        return (f"encoder '{getattr(encoder, 'name', '?')}' ({type(base).__name__}) is not "
                "built from a spec string, so workers cannot rebuild it")
    vinfo = None
    if variant is not None:
        vinfo = {"name": variant.name, "base_id": variant.base_id,
                 "options": variant.options, "spec_string": variant.spec_string}
        fingerprint = variant.source_fingerprint()
    else:
        fingerprint = base.fingerprint()
    return WorkerRecipe(cls=path, name=base.name, target=base.target, options=base.options,
                        spec_string=getattr(base, "spec_string", ""), fingerprint=fingerprint,
                        variant=vinfo)


def _gpu_options(options):
    """``options`` for an actor that holds a GPU: an encoder whose device the user did not
    choose runs on the GPU with the accelerator's batch defaults. With ``device: auto``
    (encoders/device.py) that happens when the model loads; options whose default device
    is ``cpu`` are moved to ``cuda`` here (their CPU batch defaults, which
    ``model_post_init`` marks as set, are dropped when they equal the CPU defaults)."""
    fields = type(options).model_fields
    if "device" not in fields or "device" in _user_set(options) or options.device != "cpu":
        return options
    from evalharness.encoders.base import CPU_BATCH_SIZE, CPU_BATCH_TOKENS

    data = {k: getattr(options, k) for k in _user_set(options)}
    if data.get("batch_size") == CPU_BATCH_SIZE:
        data.pop("batch_size")
    if data.get("batch_tokens") == CPU_BATCH_TOKENS:
        data.pop("batch_tokens")
    data["device"] = "cuda"
    return type(options).model_validate(data)


def _user_set(options) -> set[str]:
    return set(options.model_fields_set)


def build_from_recipe(recipe: WorkerRecipe, *, gpu: bool = False):
    """The encoder to call ``encode`` on, as the planner's: for a variant its source view
    (base + model settings, under the variant's source fingerprint)."""
    module, _, qual = recipe.cls.partition(":")
    cls = getattr(importlib.import_module(module), qual)
    options = _gpu_options(recipe.options) if gpu else recipe.options
    enc = cls(recipe.name, recipe.target, options, spec_string=recipe.spec_string)
    if recipe.variant is None:
        return enc
    from evalharness.encoders.variants import VariantEncoder, embedding_source

    v = recipe.variant
    return embedding_source(VariantEncoder(v["name"], enc, v["options"], base_id=v["base_id"],
                                           spec_string=v["spec_string"]))


# -- errors across the process boundary -----------------------------------------------
class RemoteError(Exception):
    """An error raised on a worker, in a form that always pickles (plain args)."""

    def __init__(self, kind: str, message: str, type_name: str = "", row: int | None = None):
        super().__init__(kind, message, type_name, row)
        self.kind, self.message, self.type_name, self.row = kind, message, type_name, row

    def __str__(self) -> str:
        return self.message


def _remote_error(exc: BaseException, *, setup: bool, recipe: WorkerRecipe) -> RemoteError:
    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, UserError):
        msg = (f"encoder '{recipe.variant['name'] if recipe.variant else recipe.name}' "
               f"({recipe.label}) cannot be built on the Ray workers: {exc}" if setup
               else str(exc))
        return RemoteError("user", msg, type(exc).__name__)
    if isinstance(exc, EncoderError):
        return RemoteError("encoder", str(exc).partition(": ")[2].rsplit(" (first bad row", 1)[0],
                           type(exc).__name__, exc.row)
    where = "building the encoder on a Ray worker" if setup else "on a Ray worker"
    return RemoteError("other", f"{type(exc).__name__} {where}: {exc}", type(exc).__name__)


def _unwrap(exc: BaseException) -> RemoteError | None:
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, RemoteError):
            return e
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return None


# -- the actor ------------------------------------------------------------------------
def _device_label(gpu: bool) -> str:
    if not gpu:
        return "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(torch.cuda.current_device())}"
    except Exception:  # pragma: no cover - a GPU the torch build cannot see
        pass
    return "gpu"


class EncodeActor:
    """One per Ray actor: builds the encoder once, then encodes whole blocks.

    A failure to build (e.g. a ``py:`` module that does not import on the workers) is
    kept and raised by the first call: an exception in ``__init__`` would make Ray Data
    start replacement actors that fail the same way."""

    def __init__(self, recipe: WorkerRecipe, role: str, threads: int):
        import ray

        self.recipe, self.role = recipe, role
        gpu = bool(ray.get_gpu_ids())
        self.error = None
        self.encoder = None
        try:
            if recipe.torch and not gpu:
                import torch

                torch.set_num_threads(max(1, threads))
            enc = build_from_recipe(recipe, gpu=gpu)
            fp = enc.fingerprint()
            if fp != recipe.fingerprint:
                raise UserError(f"the worker's encoder has fingerprint {fp}, the driver's "
                                f"{recipe.fingerprint}: the workers see other model files or "
                                "code", hint="install the same model and packages on the "
                                "workers as on the driver")
            if hasattr(enc, "load"):
                enc.load()
            self.encoder = enc
        except Exception as exc:  # kept for the first call
            self.error = _remote_error(exc, setup=True, recipe=recipe)
        node = ray.get_runtime_context().get_node_id()[:8]
        device = getattr(self.encoder, "device", None)  # torch encoders: after load
        self.worker = f"{node}/{os.getpid()}/" + (device if isinstance(device, str) and device
                                                  else _device_label(gpu))

    def __call__(self, batch: dict) -> dict:
        from evalharness.encoders.base import check_output

        if self.error is not None:
            raise self.error
        pos = np.asarray(batch["pos"], dtype=np.int64)
        texts = [str(t) for t in batch["text"]]
        try:
            out = self.encoder.encode(texts, role=self.role)
            vec = check_output(self.encoder.name, out, len(texts), None,
                               offset=int(pos[0]) if len(pos) else 0)
        except Exception as exc:
            raise _remote_error(exc, setup=False, recipe=self.recipe) from None
        return {"pos": pos, "vec": vec, "worker": np.full(len(pos), self.worker)}


# -- addresses ------------------------------------------------------------------------
def _host_port(address: str) -> tuple[str, int] | None:
    addr = address.removeprefix("ray://")
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to ``HOST:PORT`` (Ray itself retries a dead GCS for minutes)."""
    hp = _host_port(address)
    if hp is None:
        if address != "auto":
            raise UserError(f"Ray address '{address}' is not 'auto', HOST:PORT or "
                            "ray://HOST:PORT", field="execution.address")
        return
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at '{address}' ({exc})",
                        field="execution.address",
                        hint="start it (ray start --head), check the address and port "
                             "(GCS: 6379, Ray Client: ray://HOST:10001), or leave the "
                             "address out to start a local Ray for the run") from None


def _driver_pythonpath() -> str:
    """sys.path entries outside the interpreter's own prefix (the project, the cwd, test
    folders), so that workers of a local Ray import what the driver imports."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep = []
    for p in sys.path:
        rp = os.path.realpath(p or os.getcwd())
        if not any(rp == pre or rp.startswith(pre + os.sep) for pre in prefixes) \
                and os.path.isdir(rp) and rp not in keep:
            keep.append(rp)
    extra = os.environ.get("PYTHONPATH")
    return os.pathsep.join(keep + ([extra] if extra else []))


# -- the engine -----------------------------------------------------------------------
class RayEngine:
    """Encode cache misses on a Ray actor pool (see the module docstring).

    Use as a context manager or call ``close()`` after the run: a Ray instance this
    engine started is shut down there (one it found running is left alone)."""

    name = "ray"

    def __init__(self, config):
        from evalharness.embeddings.engines import ExecutionConfig

        self.config = config if config is not None else ExecutionConfig(engine="ray")
        self._ray = import_ray()
        self._owns = False
        self._started = False
        self._start_error: UserError | None = None
        self._address = self.config.address or "local"
        self._by_encoder: dict[str, dict] = {}
        self._last: str | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Connect (or start a local Ray); called by the first remote encode."""
        if self._started:
            return
        if self._start_error is not None:
            raise self._start_error
        ray = self._ray
        try:
            if self.config.address:
                check_reachable(self.config.address)
            if ray.is_initialized():
                self._address = self.config.address or "local (already running)"
            elif self.config.address:
                try:
                    extra = {"runtime_env": self.config.runtime_env} \
                        if self.config.runtime_env else {}
                    ray.init(address=self.config.address, logging_level=logging.WARNING,
                             configure_logging=True, **extra)
                except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                    raise UserError(f"cannot connect to the Ray cluster at "
                                    f"'{self.config.address}': {exc}",
                                    field="execution.address",
                                    hint="check the address, or leave it out to start a "
                                         "local Ray for the run") from None
                self._owns = True
            else:
                # workers inherit the driver's environment; PYTHONPATH makes them import
                # what the driver imports (py: encoders from the project or the cwd).
                # Ray runs workers at nice 15; here they are the run's own work, so they
                # get the priority the local engine would have on a shared machine
                env = dict(self.config.runtime_env or {})
                env["env_vars"] = {"PYTHONPATH": _driver_pythonpath(),
                                   **(env.get("env_vars") or {})}
                ray.init(include_dashboard=False, logging_level=logging.WARNING,
                         configure_logging=True, _system_config={"worker_niceness": 0},
                         runtime_env=env)
                self._owns = True
        except UserError as exc:
            self._start_error = exc
            raise
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self._started = True

    def close(self) -> None:
        """Shut down the Ray instance this engine started or connected (idempotent)."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False
        self._started = False

    # -- planning ------------------------------------------------------------------------
    def encodes_remotely(self, encoder) -> bool:
        """Whether ``encoder``'s misses go to Ray (else they are encoded on the driver;
        a runner need not load the model on the driver for a remote encoder)."""
        return isinstance(recipe_for(encoder), WorkerRecipe)

    def _resources(self, n_batches: int) -> dict:
        cfg = self.config
        res = self._ray.cluster_resources()
        gpus, cpus = float(res.get("GPU", 0)), float(res.get("CPU", 1))
        gpa = cfg.gpus_per_actor if cfg.gpus_per_actor is not None else (1.0 if gpus >= 1 else 0.0)
        cpa = cfg.cpus_per_actor or 1.0
        if gpa > 0 and gpus == 0:
            raise UserError(f"gpus_per_actor is {gpa:g}, but the Ray cluster at "
                            f"'{self._address}' has no GPU", field="execution.gpus_per_actor",
                            hint="set gpus_per_actor: 0 to encode on CPUs, or start GPU nodes")
        if cfg.actors:
            actors = cfg.actors
        elif gpa > 0 and gpus:
            actors = max(1, int(gpus // gpa))
        else:
            actors = 2
        actors = max(1, min(actors, n_batches))
        fits = int(gpus // gpa) if gpa > 0 else int(cpus // cpa)
        min_size = max(1, min(actors, fits))
        return {"actors": actors, "min_size": min_size, "gpus_per_actor": gpa,
                "cpus_per_actor": cpa, "cluster_gpus": gpus, "cluster_cpus": cpus}

    # -- the Engine protocol -------------------------------------------------------------
    def encode_blocks(self, encoder, texts: list[str], *, role: str,
                      block_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
        name = getattr(encoder, "name", "?")
        info = self._by_encoder.setdefault(name, {"encoded_on": None, "texts": 0,
                                                  "workers": set()})
        self._last = name
        recipe = recipe_for(encoder)
        if not isinstance(recipe, WorkerRecipe):
            from evalharness.embeddings.engines import LocalEngine

            info.update(encoded_on="driver", reason=recipe)
            for start, stop, vec in LocalEngine().encode_blocks(encoder, texts, role=role,
                                                                block_size=block_size):
                info["texts"] += stop - start
                yield start, stop, vec
            return
        if not texts:
            return
        self.start()
        yield from self._encode_remote(recipe, texts, role, block_size, info)

    def _encode_remote(self, recipe: WorkerRecipe, texts, role, block_size, info):
        import pyarrow as pa
        import ray.data as rd

        n = len(texts)
        size = max(1, int(self.config.batch_size or block_size))
        ranges = [(s, min(s + size, n)) for s in range(0, n, size)]
        plan = self._resources(len(ranges))
        info.update(encoded_on="ray", actors=plan["actors"],
                    gpus_per_actor=plan["gpus_per_actor"],
                    cpus_per_actor=plan["cpus_per_actor"])
        ctx = rd.DataContext.get_current()
        settings = {k: v for k, v in _DATA_CONTEXT.items() if hasattr(ctx, k)}
        saved = {k: getattr(ctx, k) for k in settings}
        saved["max_consecutive_actor_init_deaths"] = getattr(
            ctx, "max_consecutive_actor_init_deaths", None)
        try:
            for k, v in settings.items():
                setattr(ctx, k, v)
            ctx.max_consecutive_actor_init_deaths = self.config.max_retries
            blocks = [pa.table({"pos": np.arange(s, e, dtype=np.int64),
                                "text": pa.array(texts[s:e], type=pa.large_string())})
                      for s, e in ranges]
            # one block per range, metadata computed here (from_arrow runs a task per table)
            make = getattr(rd, "from_blocks", None) or rd.from_arrow
            ds = make(blocks)
            del blocks
        finally:
            for k, v in saved.items():
                if v is not None:
                    setattr(ctx, k, v)
        retries = {"max_restarts": self.config.max_retries,
                   "max_task_retries": self.config.max_retries}
        kwargs = dict(fn_constructor_kwargs={"recipe": recipe, "role": role,
                                             "threads": int(plan["cpus_per_actor"])},
                      compute=rd.ActorPoolStrategy(min_size=plan["min_size"],
                                                   max_size=plan["actors"]),
                      batch_size=None, batch_format="numpy", zero_copy_batch=True,
                      num_cpus=plan["cpus_per_actor"])
        if plan["gpus_per_actor"]:
            kwargs["num_gpus"] = plan["gpus_per_actor"]
        with warnings.catch_warnings():  # actor retry options are only ray_remote_args
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            try:
                out = ds.map_batches(EncodeActor, **kwargs, **retries)
                info["retry_policy"] = retries
            except TypeError:  # a Ray that no longer takes them: its defaults (retry)
                out = ds.map_batches(EncodeActor, **kwargs)
                info["retry_policy"] = "ray data defaults"
        it = iter(out.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))
        pending: dict[int, list] = {}  # range index -> [filled rows, vectors]
        try:
            for batch in it:
                pos = np.asarray(batch["pos"], dtype=np.int64)
                vec = np.asarray(batch["vec"], dtype=np.float32)
                info["workers"].update(np.unique(batch["worker"]).tolist())
                for block in _complete_ranges(pos, vec, size, n, pending):
                    info["texts"] += block[1] - block[0]
                    yield block
        except Exception as exc:
            remote = _unwrap(exc)
            if remote is None:
                raise
            if remote.kind == "user":
                raise UserError(remote.message, field=f"encoders.{info_name(recipe)}") from None
            raise EncoderError(info_name(recipe), remote.message, row=remote.row) from None
        finally:  # also on Ctrl-C or an abandoned generator: stops the job, kills actors
            close = getattr(it, "close", None)
            if close is not None:
                close()
        if pending:  # every row came back once, so nothing can be left over
            raise EncoderError(info_name(recipe), f"Ray returned incomplete ranges "
                               f"{sorted(pending)[:5]}")

    def describe(self, encoder: str | None = None) -> dict:
        """``{"engine": "ray", "address", "actors", "devices", ...}``: for ``encoder`` (an
        encoder id) where its misses were encoded; without it, the last encoder's."""
        out: dict[str, Any] = {"engine": self.name, "address": self._address,
                               "ray": getattr(self._ray, "__version__", None)}
        name = encoder if encoder is not None else self._last
        info = self._by_encoder.get(name) if name is not None else None
        if info is None or info["encoded_on"] is None:
            out.update(actors=0, devices=[], encoded_on="none (every text from the cache)"
                       if encoder is not None else None)
            return out
        workers = sorted(info["workers"])
        out.update(encoded_on=info["encoded_on"], texts=info["texts"])
        if info["encoded_on"] == "driver":
            out.update(actors=0, devices=["driver"], note=info.get("reason"))
            return out
        out.update(actors=info["actors"],
                   devices=sorted({w.split("/", 2)[2] for w in workers}),
                   nodes=len({w.split("/", 1)[0] for w in workers}),
                   worker_processes=len(workers),
                   gpus_per_actor=info["gpus_per_actor"], cpus_per_actor=info["cpus_per_actor"],
                   retry_policy=info.get("retry_policy"))
        return out


def info_name(recipe: WorkerRecipe) -> str:
    return recipe.variant["name"] if recipe.variant else recipe.name


_DATA_CONTEXT = {
    "enable_progress_bars": False,  # the planner shows its own bar
    "print_on_execution_start": False,
    "max_errored_blocks": 0,  # never drop a block that failed
    "actor_task_retry_on_errors": False,  # an encoder's exception fails the run at once
    "retried_map_errors": False,
    "raise_original_map_exception": True,  # the worker's RemoteError, not a wrapper
}


def _complete_ranges(pos: np.ndarray, vec: np.ndarray, size: int, n: int,
                     pending: dict) -> Iterator[tuple[int, int, np.ndarray]]:
    """Put rows back into their ranges ``[k*size, min((k+1)*size, n))``; yield each range
    when its last row has arrived (a whole range in one batch passes straight through)."""
    if len(pos) == 0:
        return
    order = np.argsort(pos, kind="stable")
    pos, vec = pos[order], vec[order]
    keys = pos // size
    cuts = np.flatnonzero(np.diff(keys)) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(pos)]):
        k = int(keys[lo])
        start, stop = k * size, min((k + 1) * size, n)
        if k not in pending and hi - lo == stop - start:
            yield start, stop, vec[lo:hi]
            continue
        slot = pending.setdefault(k, [0, np.empty((stop - start, vec.shape[1]), np.float32)])
        slot[1][pos[lo:hi] - start] = vec[lo:hi]
        slot[0] += hi - lo
        if slot[0] >= stop - start:
            del pending[k]
            yield start, stop, slot[1]


__all__ = ["RayEngine", "WorkerRecipe", "build_from_recipe", "check_reachable",
           "import_ray", "recipe_for", "EncodeActor"]

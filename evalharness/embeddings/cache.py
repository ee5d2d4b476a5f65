"""Content-addressed on-disk embedding cache, format v2 (docs/cache.md).

Key: (encoder fingerprint, role key, sha256(text)). Layout::

    CACHE_DIR/v2/<fingerprint>/meta.json                  facts of the model (facts.py)
    CACHE_DIR/v2/<fingerprint>/used                       touched by every run (prune age)
    CACHE_DIR/v2/<fingerprint>/<role>/data/<id>.npy       (n, dim) float32 vectors
    CACHE_DIR/v2/<fingerprint>/<role>/index/<id>.npy      (n, 40) uint8 index entries
    CACHE_DIR/v2/<fingerprint>/<role>/index/<tier>-<id>.json   segment manifest
    CACHE_DIR/v2/<fingerprint>/<role>/lock                compaction / repair only

*Data files* hold vectors in the order they were stored and are never rewritten. An
*index segment* is a sorted array of entries ``key (32 bytes) | file number (u32) | row
(u32)``, sorted by the key's first 8 bytes read as a big-endian integer, plus a JSON
manifest naming its data files with a checksum per 4 MiB block of each (xxh3-128; files
written by earlier versions: sha256), and the sha256 of the entries. The manifest is written last (temporary file, then rename): a segment
exists exactly when its manifest does, so a writer killed at any moment leaves only
unreferenced files, never a half-written visible shard.

Lookups sort the wanted keys once and ``np.searchsorted`` them in each segment (largest
first, only the keys not found yet), so a million keys need no Python object per key.
Vectors are read block by block (4 MiB) straight into the caller's matrix, each block
checked against its checksum before use; the ``.npy`` data files can also be memory-mapped
(``np.load(..., mmap_mode="r")``) by other tools.

Compaction merges index segments only (40 bytes per vector, the vectors stay where they
are): when 8 segments share a size tier (``floor(log8(rows))``) they become one segment of
a higher tier; tiers stop at 8 (16.7M entries), so an entry is rewritten at most 8 times
and the total write cost is linear in the vectors stored. It runs under an ``flock``;
writers never lock (unique file names).

A damaged or missing data file, or a damaged segment, is a cache miss: it is counted
(``EmbeddingCache.damaged``), renamed ``*.damaged``, the segments that point at it are
rewritten without those entries, and the caller encodes those texts again.

Folders of the v1 format (``CACHE_DIR/v1/<fingerprint>/<role>/*.npz``) are read: the first
lookup of a (fingerprint, role) imports its v1 shards into v2 (once; the v1 files are left
as they are, for older versions of evalharness; ``evalharness cache prune --legacy``
removes them).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:  # POSIX; without it (Windows) compaction and repair run without the lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

FORMAT = "v2"
LEGACY = "v1"
KEY_BYTES = 32
ENTRY_BYTES = 40          # key | file number (<u4) | row (<u4)
FANOUT = 8                # segments of one tier merged into one
MAX_TIER = 8              # segments of 8**8 = 16.7M entries or more are never merged
BLOCK_BYTES = 4 << 20     # vectors checksummed per block of about this size
MAX_DATA_BYTES = 64 << 20  # one store() writes data files of at most this size
GARBAGE_AGE = 3600.0      # unreferenced files younger than this may belong to a writer
GC_INTERVAL = 600.0       # compaction looks for garbage at most this often per folder
_RETRIES = 8


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def text_digests(texts, *, chunk: int = 65536) -> np.ndarray:
    """(n, 32) uint8 sha256 digests of ``texts`` (no Python object kept per text)."""
    texts = texts if isinstance(texts, list) else list(texts)
    out = np.empty((len(texts), KEY_BYTES), dtype=np.uint8)
    sha = hashlib.sha256
    for s in range(0, len(texts), chunk):
        part = texts[s:s + chunk]
        blob = b"".join([sha(t.encode("utf-8")).digest() for t in part])
        out[s:s + len(part)] = np.frombuffer(blob, dtype=np.uint8).reshape(-1, KEY_BYTES)
    return out


def default_cache_dir() -> Path:
    env = os.environ.get("EVALHARNESS_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("evalharness")) / "embeddings"


def as_keys(digests) -> np.ndarray:
    """Digests (a list of 32-byte strings or an (n, 32) uint8 array) as (n, 32) uint8."""
    if isinstance(digests, np.ndarray):
        keys = np.ascontiguousarray(digests, dtype=np.uint8)
        if keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
            raise ValueError(f"digests must have shape (n, {KEY_BYTES}), got {keys.shape}")
        return keys
    digests = list(digests)
    blob = b"".join(digests)
    if len(blob) != KEY_BYTES * len(digests):
        raise ValueError(f"every digest must be {KEY_BYTES} bytes")
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, KEY_BYTES)


def key_prefix(keys: np.ndarray) -> np.ndarray:
    """First 8 bytes of each key as an unsigned integer (big-endian: byte order = order)."""
    return np.ascontiguousarray(keys[:, :8]).view(">u8").ravel().astype(np.uint64)


def tier_of(rows: int) -> int:
    return max(0, (int(rows).bit_length() - 1) // 3)  # floor(log8(rows))


def _sha256(buf) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(buf)).cast("B")).hexdigest()


# Checksums of vector blocks: xxh3-128 (xxhash), about 15x the speed of sha256 here (27 GB/s
# vs 1.6 GB/s), so reading a warm 1M-vector table (1.5 GB) checks it in ~0.06 s instead of
# ~0.9 s. It detects damage (changed, zeroed or shuffled bytes), which is all it is for: a
# cache folder is not an adversary. Data files written before carry sha256 digests (no
# "hash" in their record) and are still checked with sha256.
BLOCK_HASH = "xxh3_128"


def block_digest(buf, algo: str | None) -> str:
    """Checksum of a block of vectors with the data file's algorithm (None: sha256)."""
    if algo == BLOCK_HASH:
        import xxhash

        return xxhash.xxh3_128_hexdigest(memoryview(np.ascontiguousarray(buf)).cast("B"))
    if algo in (None, "sha256"):
        return _sha256(buf)
    raise Damaged(f"unknown block checksum {algo!r}")


def _new_id() -> str:
    return uuid.uuid4().hex


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - not on every platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write, *, fsync: bool = False) -> int:
    """Write via ``write(fh)`` to a temporary file beside ``path``, then rename it into
    place: readers see the old state or the whole new file. Returns the bytes written."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
            size = fh.tell()
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return size


def _quarantine(path: Path) -> None:
    try:
        os.replace(path, path.with_name(path.name + ".damaged"))
    except OSError:
        pass


@contextmanager
def folder_lock(folder: Path, *, blocking: bool = True):
    """Exclusive ``flock`` on ``folder/lock``; yields False when ``blocking`` is False and
    another process holds it."""
    if fcntl is None:  # pragma: no cover
        yield True
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# -- index segments ------------------------------------------------------------------------
@dataclass
class Segment:
    """One verified index segment, its entries memory-mapped."""

    manifest: Path
    tier: int
    entries: np.ndarray       # (n, 40) uint8
    files: list[dict]         # {"id", "rows", "dim", "block_rows", "blocks", "hash"}
    created: float = 0.0
    prefix: np.ndarray = field(repr=False, default=None)

    @property
    def rows(self) -> int:
        return len(self.entries)

    @property
    def index_path(self) -> Path:
        return self.manifest.parent / f"{self.manifest.stem.split('-', 1)[1]}.npy"


class Damaged(Exception):
    """A shard failed its checksum or could not be parsed."""


def segment_paths(role_dir: Path) -> list[Path]:
    try:
        names = os.listdir(role_dir / "index")
    except FileNotFoundError:
        return []
    return sorted(role_dir / "index" / n for n in names
                  if n.endswith(".json") and not n.startswith("."))


def manifest_tier(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[0])
    except ValueError:
        return -1


def read_segment(manifest: Path, *, verify: bool = True) -> Segment:
    """Load one segment. FileNotFoundError: it was compacted away meanwhile; Damaged: its
    manifest or entries are corrupt."""
    try:
        info = json.loads(manifest.read_text())
        files = info["files"]
        rows = int(info["rows"])
        digest = info["index_sha256"]
        if info.get("format") != 2 or not isinstance(files, list):
            raise ValueError("not a v2 manifest")
        for f in files:
            f["id"], f["rows"], f["dim"], f["block_rows"], f["blocks"]  # noqa: B018
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Damaged(f"{manifest.name}: {exc}") from None
    seg = Segment(manifest, manifest_tier(manifest), None, files,
                  created=float(info.get("created") or 0.0))
    try:
        entries = np.load(seg.index_path, mmap_mode="r") if rows else \
            np.zeros((0, ENTRY_BYTES), np.uint8)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise Damaged(f"{seg.index_path.name}: {exc}") from None
    if entries.dtype != np.uint8 or entries.shape != (rows, ENTRY_BYTES):
        raise Damaged(f"{seg.index_path.name}: shape {entries.shape}, expected ({rows}, 40)")
    if verify and _sha256(entries) != digest:
        raise Damaged(f"{seg.index_path.name}: checksum mismatch")
    seg.entries = entries
    seg.prefix = key_prefix(entries[:, :KEY_BYTES]) if rows else np.zeros(0, np.uint64)
    return seg


def write_segment(index_dir: Path, entries: np.ndarray, files: list[dict], *,
                  fsync: bool = False) -> tuple[Path, int]:
    """Entries (sorted by key prefix) and manifest; returns (manifest, bytes written)."""
    sid = _new_id()
    entries = np.ascontiguousarray(entries, dtype=np.uint8)
    written = 0
    if len(entries):
        written += _atomic_write(index_dir / f"{sid}.npy", lambda fh: np.save(fh, entries),
                                 fsync=fsync)
    manifest = index_dir / f"{tier_of(len(entries))}-{sid}.json"
    body = json.dumps({"format": 2, "rows": int(len(entries)),
                       "index_sha256": _sha256(entries), "created": time.time(),
                       "files": files}).encode()
    written += _atomic_write(manifest, lambda fh: fh.write(body), fsync=fsync)
    if fsync:
        _fsync_dir(index_dir)
    return manifest, written


def delete_segment(seg_manifest: Path) -> None:
    """Manifest first (readers stop seeing the segment), then its entries."""
    seg_manifest.unlink(missing_ok=True)
    (seg_manifest.parent / f"{seg_manifest.stem.split('-', 1)[1]}.npy").unlink(missing_ok=True)


def sort_entries(keys: np.ndarray, files: np.ndarray, rows: np.ndarray,
                 *, keep_first: bool = True) -> np.ndarray:
    """(n, 40) entries sorted by key prefix; of equal keys the first given is kept."""
    n = len(keys)
    entries = np.empty((n, ENTRY_BYTES), dtype=np.uint8)
    if not n:
        return entries
    prefix = key_prefix(keys)
    order = np.argsort(prefix, kind="stable")
    entries[:, :KEY_BYTES] = keys[order]
    entries[:, 32:36] = np.asarray(files, dtype="<u4")[order].view(np.uint8).reshape(n, 4)
    entries[:, 36:40] = np.asarray(rows, dtype="<u4")[order].view(np.uint8).reshape(n, 4)
    p = prefix[order]
    same = np.flatnonzero(p[1:] == p[:-1]) + 1  # equal prefixes: rare, compare whole keys
    if len(same):
        k = entries[:, :KEY_BYTES]
        drop = set()
        for i in same.tolist():
            j = i - 1
            while j >= 0 and p[j] == p[i]:
                if j not in drop and (k[j] == k[i]).all():
                    drop.add(i)
                    break
                j -= 1
        if drop:
            entries = np.delete(entries, sorted(drop), axis=0)
    return entries


def entry_refs(entries: np.ndarray) -> np.ndarray:
    """(n, 2) uint32: file number and row of each entry."""
    return np.ascontiguousarray(entries[:, 32:40]).view("<u4").reshape(-1, 2)


def read_npy_header(fh, rows: int, dim: int) -> int:
    """Check an open data file's .npy header against (rows, dim) float32; returns the
    offset of the first row. Damaged if it does not match."""
    try:
        version = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise Damaged(f"bad header: {exc}") from None
    if dtype != np.float32 or fortran or tuple(shape) != (rows, dim):
        raise Damaged(f"header says {shape} {dtype}, expected ({rows}, {dim}) float32")
    return fh.tell()


def check_block(rec: dict, b: int, view) -> None:
    """Raise Damaged unless block ``b`` of data file ``rec`` holds ``view``'s bytes."""
    if b >= len(rec["blocks"]) or block_digest(view, rec.get("hash")) != rec["blocks"][b]:
        raise Damaged(f"block {b} checksum mismatch")


def check_data_file(path: Path, rec: dict) -> str | None:
    """Read a whole data file and check every block: None if sound, else what is wrong
    (FileNotFoundError propagates)."""
    rows, dim, br = int(rec["rows"]), int(rec["dim"]), int(rec["block_rows"])
    with open(path, "rb") as fh:
        try:
            read_npy_header(fh, rows, dim)
        except Damaged as exc:
            return str(exc)
        buf = np.empty((min(br, rows), dim), dtype=np.float32)
        for b, r0 in enumerate(range(0, rows, br)):
            view = buf[:min(br, rows - r0)]
            if fh.readinto(memoryview(view).cast("B")) != view.nbytes:
                return "truncated"
            try:
                check_block(rec, b, view)
            except Damaged as exc:
                return str(exc)
    return None


# -- lookups --------------------------------------------------------------------------------
class Found:
    """The result of ``EmbeddingCache.find``: which keys are cached, and a reader.

    ``mask``: one bool per key; ``dim``: the vectors' dimension (None when nothing hit);
    ``read_into(out, rows)`` copies the hit vectors into ``out[rows[i]]`` and returns the
    mask of the keys actually read (a key whose data turns out damaged is a miss).
    """

    def __init__(self, cache: "EmbeddingCache", role_dir: Path, keys: np.ndarray,
                 segments: list[Segment], damaged: int = 0, dead_ids=frozenset()):
        self._cache = cache
        self._dir = role_dir
        self._keys = keys
        self._segments = segments
        self.damaged = damaged
        self._files: list[dict] = []
        gid: dict[str, int] = {}
        self._seg_gmap = []
        for seg in segments:
            m = []
            for f in seg.files:
                if f["id"] not in gid:
                    gid[f["id"]] = len(self._files)
                    self._files.append(f)
                m.append(gid[f["id"]])
            self._seg_gmap.append(np.asarray(m, dtype=np.int64))
        self._dead = np.array([f["id"] in dead_ids for f in self._files], dtype=bool)
        n = len(keys)
        self._gfile = np.full(n, -1, dtype=np.int64)
        self._grow = np.zeros(n, dtype=np.int64)
        if n and segments:
            self._prefix = key_prefix(keys)
            self._order = np.argsort(self._prefix, kind="stable")
            self._locate(np.arange(n))
        self.dim = None
        hit_files = np.unique(self._gfile[self._gfile >= 0])
        if len(hit_files):
            self.dim = int(self._files[hit_files[0]]["dim"])

    @property
    def mask(self) -> np.ndarray:
        return self._gfile >= 0

    @property
    def count(self) -> int:
        return int((self._gfile >= 0).sum())

    def _locate(self, which: np.ndarray) -> None:
        """Find keys ``which`` (indices, any order) in the segments, skipping dead files."""
        which = np.asarray(which, dtype=np.int64)
        self._gfile[which] = -1
        if not len(which) or not self._segments:
            return
        # sorted by prefix: searchsorted with sorted needles walks memory in order
        if len(which) == len(self._order):  # all of them (the first pass)
            remaining = self._order
        else:
            remaining = which[np.argsort(self._prefix[which], kind="stable")]
        for seg, gmap in zip(self._segments, self._seg_gmap):
            if not len(remaining) or not seg.rows or not len(gmap):
                continue
            q = self._prefix[remaining]
            pos = np.searchsorted(seg.prefix, q, side="left")
            ok = pos < seg.rows
            ok[ok] = seg.prefix[pos[ok]] == q[ok]
            cand = np.flatnonzero(ok)
            if not len(cand):
                continue
            ent = np.array(seg.entries[pos[cand]])  # (k, 40), read from the mapping
            want = self._keys[remaining[cand]]
            match = (ent[:, :KEY_BYTES] == want).all(axis=1)
            for j in np.flatnonzero(~match):  # same 8-byte prefix, other key: scan the run
                p = int(pos[cand[j]]) + 1
                while p < seg.rows and seg.prefix[p] == q[cand[j]]:
                    if (seg.entries[p, :KEY_BYTES] == want[j]).all():
                        ent[j] = seg.entries[p]
                        match[j] = True
                        break
                    p += 1
            refs = entry_refs(ent)
            local = refs[:, 0].astype(np.int64)
            valid = match & (local < len(gmap))
            g = np.where(valid, gmap[np.minimum(local, len(gmap) - 1)], -1)
            valid &= g >= 0
            valid[valid] &= ~self._dead[g[valid]]
            hit = cand[valid]
            idx = remaining[hit]
            self._gfile[idx] = g[valid]
            self._grow[idx] = refs[valid, 1]
            keep = np.ones(len(remaining), dtype=bool)
            keep[hit] = False
            remaining = remaining[keep]

    def read_into(self, out: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Copy hit vectors to ``out[rows[i]]`` (``rows`` default: ``i``); returns the mask
        of keys read. ``out`` must have ``self.dim`` columns."""
        todo = np.flatnonzero(self._gfile >= 0)
        done = np.zeros(len(self._keys), dtype=bool)
        for _attempt in range(len(self._files) + 1):
            if not len(todo):
                break
            order = np.lexsort((self._grow[todo], self._gfile[todo]))
            todo = todo[order]
            g = self._gfile[todo]
            bounds = np.flatnonzero(np.diff(g)) + 1
            newly_dead = []
            for part in np.split(todo, bounds):
                gi = int(self._gfile[part[0]])
                if int(self._files[gi]["dim"]) != out.shape[1]:
                    continue  # vectors of another dimension: not these (a miss)
                dst = part if rows is None else np.asarray(rows)[part]
                if self._cache._read_rows(self._dir, self._files[gi], self._grow[part],
                                          out, dst):
                    done[part] = True
                else:
                    newly_dead.append(gi)
            if not newly_dead:
                break
            self.damaged += len(newly_dead)
            self._cache.damaged += len(newly_dead)
            self._dead[newly_dead] = True
            self._cache._repair(self._dir, [self._files[i]["id"] for i in newly_dead])
            redo = np.flatnonzero(np.isin(self._gfile, newly_dead))
            self._locate(redo)  # another segment may hold them
            todo = redo[self._gfile[redo] >= 0]
        self._gfile[~done] = -1
        return done


# -- the cache ----------------------------------------------------------------------------
class EmbeddingCache:
    def __init__(self, root: str | Path | None = None, *, verify: bool = True):
        self.root = Path(root) if root else default_cache_dir()
        self.verify = verify
        self.damaged = 0            # damaged shards met by this instance
        self.bytes_written = 0      # vectors, entries and manifests (compaction included)
        self.write_seconds = 0.0
        self._verified_blocks: set[tuple[str, int]] = set()
        self._verified_segments: set[str] = set()

    # the cache's keys of texts (sha256), for callers that hold a cache but should not
    # import this module (e.g. the encoders' token cache)
    text_digests = staticmethod(text_digests)

    # -- paths and facts -------------------------------------------------------------
    def _fp_dir(self, fingerprint: str) -> Path:
        return self.root / FORMAT / fingerprint

    def _dir(self, fingerprint: str, role: str) -> Path:
        return self.root / FORMAT / fingerprint / role

    def meta(self, fingerprint: str) -> dict:
        """Facts about the model of ``fingerprint`` saved by an earlier run ({} if none)."""
        for fmt in (FORMAT, LEGACY):
            try:
                data = json.loads((self.root / fmt / fingerprint / "meta.json").read_text())
            except (OSError, ValueError):
                continue
            return data if isinstance(data, dict) else {}
        return {}

    def update_meta(self, fingerprint: str, facts: dict) -> None:
        current = self.meta(fingerprint)
        if all(current.get(k) == v for k, v in facts.items()):
            return
        folder = self._fp_dir(fingerprint)
        folder.mkdir(parents=True, exist_ok=True)
        body = json.dumps({**current, **facts}).encode()
        _atomic_write(folder / "meta.json", lambda fh: fh.write(body))

    def _touch(self, fingerprint: str) -> None:
        path = self._fp_dir(fingerprint) / "used"
        try:
            os.utime(path)
        except FileNotFoundError:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            except OSError:
                pass
        except OSError:
            pass

    # -- reading ---------------------------------------------------------------------
    def segments(self, role_dir: Path) -> tuple[list[Segment], int]:
        """The verified segments of a (fingerprint, role) folder, largest first, and how
        many damaged ones were found (and set aside)."""
        damaged_names = []
        segs: list[Segment] = []
        for _attempt in range(_RETRIES):
            segs, vanished = [], False
            for manifest in segment_paths(role_dir):
                verify = self.verify and str(manifest) not in self._verified_segments
                try:
                    seg = read_segment(manifest, verify=verify)
                except FileNotFoundError:
                    vanished = True  # compacted away meanwhile: list again
                    break
                except Damaged:
                    damaged_names.append(manifest)
                    continue
                self._verified_segments.add(str(manifest))
                segs.append(seg)
            if not vanished:
                break
        damaged = 0
        for manifest in dict.fromkeys(damaged_names):
            if manifest.exists():
                damaged += 1
                _quarantine(manifest.parent / f"{manifest.stem.split('-', 1)[1]}.npy")
                _quarantine(manifest)
        segs.sort(key=lambda s: -s.rows)
        return segs, damaged

    def find(self, fingerprint: str, role: str, digests) -> Found:
        """Which of ``digests`` are cached (two-phase lookup: ``Found.read_into``)."""
        keys = as_keys(digests)
        role_dir = self._dir(fingerprint, role)
        self._migrate_v1(fingerprint, role)
        if not role_dir.exists():
            return Found(self, role_dir, keys, [])
        self._touch(fingerprint)
        segs, damaged = self.segments(role_dir)
        missing = self._missing_files(role_dir, segs)
        if missing:  # data files gone (deleted by hand, or set aside as damaged)
            damaged += len(missing)
            self._repair(role_dir, sorted(missing))
        self.damaged += damaged
        return Found(self, role_dir, keys, segs, damaged, dead_ids=missing)

    def lookup(self, fingerprint: str, role: str, digests):
        """Return (hit mask, vectors for hits in order of ``digests`` or None)."""
        found = self.find(fingerprint, role, digests)
        mask = found.mask
        if found.dim is None:
            return mask, None
        out = np.empty((int(mask.sum()), found.dim), dtype=np.float32)
        read = found.read_into(out, np.cumsum(mask) - 1)
        if not np.array_equal(read, mask):  # damaged data met while reading
            out = out[read[mask]]
        return read, out

    def _missing_files(self, role_dir: Path, segs: list[Segment]) -> set[str]:
        if not segs:
            return set()
        try:
            present = set(os.listdir(role_dir / "data"))
        except FileNotFoundError:
            present = set()
        return {f["id"] for s in segs for f in s.files if f"{f['id']}.npy" not in present}

    def _read_rows(self, role_dir: Path, rec: dict, src: np.ndarray, out: np.ndarray,
                   dst: np.ndarray) -> bool:
        """Copy rows ``src`` (ascending) of data file ``rec`` to ``out[dst]``, reading and
        checking one block at a time; False if the file is missing or damaged (then it is
        renamed ``*.damaged``)."""
        path = role_dir / "data" / f"{rec['id']}.npy"
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return False
        try:
            with fh:
                rows, dim, br = int(rec["rows"]), int(rec["dim"]), int(rec["block_rows"])
                offset = read_npy_header(fh, rows, dim)
                buf = np.empty((min(br, rows), dim), dtype=np.float32)
                blocks = src // br
                cuts = np.flatnonzero(np.diff(blocks)) + 1
                for part in np.split(np.arange(len(src)), cuts):
                    if not len(part):
                        continue
                    b = int(blocks[part[0]])
                    r0 = b * br
                    view = buf[:min(br, rows - r0)]
                    fh.seek(offset + r0 * dim * 4)
                    if fh.readinto(memoryview(view).cast("B")) != view.nbytes:
                        raise Damaged(f"{path.name}: truncated")
                    if self.verify and (rec["id"], b) not in self._verified_blocks:
                        try:
                            check_block(rec, b, view)
                        except Damaged as exc:
                            raise Damaged(f"{path.name}: {exc}") from None
                        self._verified_blocks.add((rec["id"], b))
                    out[dst[part]] = view[src[part] - r0]
            return True
        except Damaged:
            _quarantine(path)
            return False

    # -- writing ---------------------------------------------------------------------
    def store(self, fingerprint: str, role: str, digests, vecs: np.ndarray) -> None:
        keys = as_keys(digests)
        if len(keys) == 0:
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(keys):
            raise ValueError(f"{len(keys)} digests but vectors of shape {vecs.shape}")
        t0 = time.perf_counter()
        role_dir = self._dir(fingerprint, role)
        for _attempt in range(3):  # the folder may be pruned under us: make it again
            try:
                self._store(role_dir, keys, vecs)
                break
            except FileNotFoundError:
                if _attempt == 2:
                    raise
        self._touch(fingerprint)
        self.write_seconds += time.perf_counter() - t0
        try:
            self.maybe_compact(role_dir)
        except FileNotFoundError:  # pruned meanwhile: what was just stored is gone too
            pass

    def _store(self, role_dir: Path, keys: np.ndarray, vecs: np.ndarray) -> None:
        (role_dir / "data").mkdir(parents=True, exist_ok=True)
        (role_dir / "index").mkdir(parents=True, exist_ok=True)
        dim = vecs.shape[1]
        per_file = max(1, MAX_DATA_BYTES // (4 * dim))
        block_rows = max(1, BLOCK_BYTES // (4 * dim))
        files, fileno, rowno = [], [], []
        for i, s in enumerate(range(0, len(vecs), per_file)):
            part = vecs[s:s + per_file]
            fid = _new_id()
            self.bytes_written += _atomic_write(role_dir / "data" / f"{fid}.npy",
                                                lambda fh, a=part: np.save(fh, a))
            files.append({"id": fid, "rows": int(len(part)), "dim": int(dim),
                          "block_rows": int(block_rows),
                          "hash": BLOCK_HASH,
                          "blocks": [block_digest(part[b:b + block_rows], BLOCK_HASH)
                                     for b in range(0, len(part), block_rows)]})
            fileno.append(np.full(len(part), i, dtype=np.uint32))
            rowno.append(np.arange(len(part), dtype=np.uint32))
        entries = sort_entries(keys, np.concatenate(fileno), np.concatenate(rowno))
        _, written = write_segment(role_dir / "index", entries, files)
        self.bytes_written += written

    # -- compaction, repair, garbage ------------------------------------------------------
    def maybe_compact(self, role_dir: Path, *, blocking: bool = False) -> int:
        """Merge segments while a tier below MAX_TIER holds FANOUT of them; returns the
        number of merges (0 also when another process holds the lock)."""
        if not self._needs_merge(segment_paths(role_dir)):
            return 0
        t0 = time.perf_counter()
        merges = 0
        with folder_lock(role_dir, blocking=blocking) as got:
            if not got:
                return 0
            while True:
                group = self._needs_merge(segment_paths(role_dir))
                if not group:
                    break
                self._merge(role_dir, group)
                merges += 1
            self._maybe_gc(role_dir)
        self.write_seconds += time.perf_counter() - t0
        return merges

    @staticmethod
    def _needs_merge(manifests: list[Path]) -> list[Path] | None:
        tiers: dict[int, list[Path]] = {}
        for m in manifests:
            t = manifest_tier(m)
            if 0 <= t < MAX_TIER:
                tiers.setdefault(t, []).append(m)
        for t in sorted(tiers):
            if len(tiers[t]) >= FANOUT:
                return tiers[t]
        return None

    def _merge(self, role_dir: Path, group: list[Path], *, drop_files=frozenset()) -> None:
        """Replace the segments ``group`` by one (under the lock): duplicates and entries
        of files in ``drop_files`` or missing are dropped; data files stay."""
        segs = []
        for m in group:
            try:
                segs.append(read_segment(m, verify=self.verify))
            except FileNotFoundError:
                continue
            except Damaged:
                self.damaged += 1
                _quarantine(m.parent / f"{m.stem.split('-', 1)[1]}.npy")
                _quarantine(m)
        try:
            present = set(os.listdir(role_dir / "data"))
        except FileNotFoundError:
            present = set()
        # newest first: of a key stored twice the newer entry is kept
        segs.sort(key=lambda s: s.created, reverse=True)
        files, gid, keys, fno, rno = [], {}, [], [], []
        for seg in segs:
            gmap = []
            for f in seg.files:
                alive = f["id"] not in drop_files and f"{f['id']}.npy" in present
                if alive and f["id"] not in gid:
                    gid[f["id"]] = len(files)
                    files.append(f)
                gmap.append(gid[f["id"]] if alive else -1)
            if not seg.rows:
                continue
            refs = entry_refs(seg.entries)
            g = np.asarray(gmap, dtype=np.int64)[refs[:, 0].astype(np.int64)]
            keep = g >= 0
            keys.append(np.asarray(seg.entries[keep, :KEY_BYTES]))
            fno.append(g[keep])
            rno.append(refs[keep, 1])
        if keys:
            entries = sort_entries(np.concatenate(keys), np.concatenate(fno),
                                   np.concatenate(rno))
        else:
            entries = np.zeros((0, ENTRY_BYTES), np.uint8)
        # files left without entries (all duplicates) are dropped from the manifest
        used = np.unique(entry_refs(entries)[:, 0]) if len(entries) else np.zeros(0, int)
        if len(used) < len(files):
            remap = np.full(len(files), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            refs = entry_refs(entries).copy()
            refs[:, 0] = remap[refs[:, 0]]
            entries[:, 32:40] = refs.astype("<u4").view(np.uint8).reshape(-1, 8)
            files = [files[i] for i in used.tolist()]
        if len(entries):
            _, written = write_segment(role_dir / "index", entries, files, fsync=True)
            self.bytes_written += written
        for m in group:
            delete_segment(m)

    def _repair(self, role_dir: Path, dead_ids: list[str]) -> None:
        """Rewrite the segments that point at data files ``dead_ids`` without them."""
        dead = set(dead_ids)
        with folder_lock(role_dir) as _:
            for m in segment_paths(role_dir):
                try:
                    info = json.loads(m.read_text())
                except (OSError, ValueError):
                    continue
                if any(f.get("id") in dead for f in info.get("files", [])):
                    self._merge(role_dir, [m], drop_files=dead)

    def _maybe_gc(self, role_dir: Path) -> None:
        stamp = role_dir / "gc"
        try:
            if time.time() - stamp.stat().st_mtime < GC_INTERVAL:
                return
        except FileNotFoundError:
            pass
        collect_garbage(role_dir)
        try:
            stamp.touch()
        except OSError:  # pragma: no cover
            pass

    # -- v1 ------------------------------------------------------------------------------
    def _migrate_v1(self, fingerprint: str, role: str) -> None:
        """Import the v1 shards of (fingerprint, role) not imported yet (once)."""
        v1 = self.root / LEGACY / fingerprint / role
        if not v1.is_dir():
            return
        shards = sorted(p.name for p in v1.glob("*.npz"))
        role_dir = self._dir(fingerprint, role)
        marker = role_dir / "v1-imported.json"

        def imported() -> set:
            try:
                return set(json.loads(marker.read_text()))
            except (OSError, ValueError):
                return set()

        if not set(shards) - imported():
            return
        role_dir.mkdir(parents=True, exist_ok=True)
        with folder_lock(role_dir):
            done = imported()
            for name in shards:
                if name in done:
                    continue
                try:
                    with np.load(v1 / name) as z:
                        keys, vecs = np.asarray(z["keys"]), np.asarray(z["vecs"])
                    if keys.ndim != 2 or keys.shape[1] != KEY_BYTES or len(keys) != len(vecs):
                        raise ValueError("bad shapes")
                except FileNotFoundError:
                    continue  # compacted by an old version meanwhile
                except Exception:  # a damaged v1 shard: skipped (its texts are misses)
                    self.damaged += 1
                else:
                    if len(keys):
                        self._store(role_dir, keys.astype(np.uint8), vecs.astype(np.float32))
                done.add(name)
            body = json.dumps(sorted(done)).encode()
            _atomic_write(marker, lambda fh: fh.write(body))
        self.maybe_compact(role_dir)


def referenced_files(role_dir: Path) -> set[str] | None:
    """Ids of the data files some manifest points at; None if a manifest is unreadable
    (then nothing may be collected)."""
    out = set()
    for m in segment_paths(role_dir):
        try:
            info = json.loads(m.read_text())
            out.update(f["id"] for f in info["files"])
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return out


def collect_garbage(role_dir: Path, *, age: float = GARBAGE_AGE, now: float | None = None) -> int:
    """Delete (under the caller's lock) what no manifest points at and no writer can still
    be writing (older than ``age`` seconds): temporary files, entries without a manifest,
    unreferenced data files. Returns the bytes freed."""
    now = time.time() if now is None else now
    refs = referenced_files(role_dir)
    live_index = {m.stem.split("-", 1)[1] for m in segment_paths(role_dir)}
    freed = 0
    for sub in ("data", "index"):
        folder = role_dir / sub
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            path = folder / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if now - st.st_mtime < age:
                continue
            stem = name[:-4] if name.endswith(".npy") else None
            garbage = name.endswith(".tmp") or (
                stem is not None and (
                    (sub == "data" and refs is not None and stem not in refs) or
                    (sub == "index" and stem not in live_index)))
            if garbage:
                try:
                    path.unlink()
                    freed += st.st_size
                except FileNotFoundError:
                    pass
    return freed

"""``evalharness cache info|verify|prune``: what the embedding cache holds, whether it is
sound, and removing what is no longer wanted (docs/cache.md).

- ``info``: size, fingerprints (with the model facts kept for them and when a run last
  used them), index segments, data files, vectors, damaged shards set aside, garbage left
  by killed writers, and the legacy v1 folder if there is one.
- ``verify``: reads every segment and every block of every data file and checks its
  checksum; a damaged shard is set aside (renamed ``*.damaged``) and the index entries that
  point at it dropped, so the next run re-encodes those texts. Exit 1 if any was found.
- ``prune``: removes fingerprints by age of last use (``--older-than DAYS``) and/or by
  fingerprint (``--fingerprint FP``, a unique prefix is enough; both given: both must
  match), the v1 folder (``--legacy``), and always garbage (temporary files and files no
  index points at, older than an hour) and shards set aside as damaged.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from evalharness.errors import UserError

# numpy and the cache module are imported by the commands, not by ``--help``
FORMAT, LEGACY = "v2", "v1"  # as in embeddings/cache.py
DAY = 86400.0


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _dirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def _role_dirs(fp_dir: Path) -> list[Path]:
    return [d for d in _dirs(fp_dir) if (d / "index").is_dir() or (d / "data").is_dir()]


def last_used(fp_dir: Path) -> float:
    """When a run last looked up or stored vectors of this fingerprint (the ``used``
    stamp; for v1 folders and older, the newest file)."""
    try:
        return (fp_dir / "used").stat().st_mtime
    except OSError:
        pass
    newest = 0.0
    for dirpath, _, files in os.walk(fp_dir):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                pass
    return newest


def _iso(ts: float) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _damaged_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.damaged")) if folder.exists() else []


def _garbage(role_dir: Path, now: float) -> int:
    """Bytes that ``collect_garbage`` would free now (without deleting anything)."""
    from evalharness.embeddings.cache import GARBAGE_AGE, referenced_files, segment_paths

    refs = referenced_files(role_dir)
    live = {m.stem.split("-", 1)[1] for m in segment_paths(role_dir)}
    total = 0
    for sub in ("data", "index"):
        try:
            names = os.listdir(role_dir / sub)
        except FileNotFoundError:
            continue
        for name in names:
            path = role_dir / sub / name
            try:
                st = path.stat()
            except OSError:
                continue
            stem = name[:-4] if name.endswith(".npy") else None
            if now - st.st_mtime >= GARBAGE_AGE and (name.endswith(".tmp") or (
                    stem is not None and ((sub == "data" and refs is not None and stem not in refs)
                                          or (sub == "index" and stem not in live)))):
                total += st.st_size
    return total


# -- info --------------------------------------------------------------------------------
def info(root: str | Path | None = None) -> dict:
    from evalharness.embeddings.cache import default_cache_dir, segment_paths

    root = Path(root) if root else default_cache_dir()
    now = time.time()
    out = {"root": str(root), "format": FORMAT, "exists": root.exists(), "bytes": 0,
           "fingerprints": [], "segments": 0, "data_files": 0, "vectors": 0,
           "damaged": 0, "garbage_bytes": 0, "legacy": None, "other_bytes": {}}
    for fp_dir in _dirs(root / FORMAT):
        fp = {"fingerprint": fp_dir.name, "bytes": _size(fp_dir),
              "last_used": _iso(last_used(fp_dir)), "meta": {}, "roles": {}}
        try:
            fp["meta"] = json.loads((fp_dir / "meta.json").read_text())
        except (OSError, ValueError):
            pass
        for role_dir in _role_dirs(fp_dir):
            manifests = segment_paths(role_dir)
            rows, dims, files = 0, set(), set()
            for m in manifests:
                try:
                    man = json.loads(m.read_text())
                    rows += int(man["rows"])
                    for f in man["files"]:
                        files.add(f["id"])
                        dims.add(int(f["dim"]))
                except (OSError, ValueError, KeyError, TypeError):
                    pass
            fp["roles"][role_dir.name] = {"segments": len(manifests), "data_files": len(files),
                                          "vectors": rows, "dim": sorted(dims),
                                          "bytes": _size(role_dir)}
            out["segments"] += len(manifests)
            out["data_files"] += len(files)
            out["vectors"] += rows if role_dir.name != "tokens" else 0
            out["garbage_bytes"] += _garbage(role_dir, now)
        out["damaged"] += len(_damaged_files(fp_dir))
        out["bytes"] += fp["bytes"]
        out["fingerprints"].append(fp)
    legacy = root / LEGACY
    if legacy.is_dir():
        size = _size(legacy)
        out["legacy"] = {"path": str(legacy), "bytes": size,
                         "fingerprints": len(_dirs(legacy))}
        out["bytes"] += size
    for other in _dirs(root):
        if other.name not in (FORMAT, LEGACY):
            size = _size(other)
            out["other_bytes"][other.name] = size
            out["bytes"] += size
    return out


# -- verify ------------------------------------------------------------------------------
def verify(root: str | Path | None = None, fingerprint: str | None = None) -> dict:
    """Check every segment and data block; set aside what is damaged (see module doc)."""
    from evalharness.embeddings.cache import (Damaged, EmbeddingCache, check_data_file,
                                              default_cache_dir, folder_lock, read_segment,
                                              segment_paths)

    root = Path(root) if root else default_cache_dir()
    cache = EmbeddingCache(root)
    fps = _select(root, fingerprint, None, now=time.time()) if fingerprint else \
        [d.name for d in _dirs(root / FORMAT)]
    report = {"root": str(root), "segments": 0, "data_files": 0, "bytes_checked": 0,
              "damaged": [], "ok": True}
    for fp in fps:
        for role_dir in _role_dirs(root / FORMAT / fp):
            dead = []
            with folder_lock(role_dir):  # no compaction meanwhile
                for m in segment_paths(role_dir):
                    try:
                        seg = read_segment(m, verify=True)
                    except FileNotFoundError:
                        continue
                    except Damaged as exc:
                        report["damaged"].append({"path": str(m), "problem": str(exc)})
                        index = m.parent / f"{m.stem.split('-', 1)[1]}.npy"
                        for path in (index, m):
                            if path.exists():
                                os.replace(path, path.with_name(path.name + ".damaged"))
                        continue
                    report["segments"] += 1
                    report["bytes_checked"] += seg.entries.nbytes
                    for rec in seg.files:
                        path = role_dir / "data" / f"{rec['id']}.npy"
                        report["data_files"] += 1
                        try:
                            problem = check_data_file(path, rec)
                        except FileNotFoundError:
                            problem = "missing"
                        if problem is None:
                            report["bytes_checked"] += int(rec["rows"]) * int(rec["dim"]) * 4
                            continue
                        report["damaged"].append({"path": str(path), "problem": problem})
                        dead.append(rec["id"])
                        if path.exists():
                            os.replace(path, path.with_name(path.name + ".damaged"))
            if dead:
                cache._repair(role_dir, dead)
    report["ok"] = not report["damaged"]
    return report


# -- prune -------------------------------------------------------------------------------
def _select(root: Path, fingerprint: str | None, older_than_days: float | None, *,
            now: float) -> list[str]:
    names = sorted({d.name for d in _dirs(root / FORMAT)} | {d.name for d in _dirs(root / LEGACY)})
    chosen = names
    if fingerprint:
        exact = [n for n in names if n == fingerprint]
        chosen = exact or [n for n in names if n.startswith(fingerprint)]
        if not chosen:
            raise UserError(f"no fingerprint '{fingerprint}' in the cache at {root}",
                            hint="`evalharness cache info` lists them")
        if len(chosen) > 1:
            raise UserError(f"fingerprint prefix '{fingerprint}' matches {len(chosen)}: "
                            f"{', '.join(c[:12] for c in chosen[:5])}...",
                            hint="give more characters")
    if older_than_days is not None:
        cutoff = now - older_than_days * DAY
        chosen = [n for n in chosen
                  if max(last_used(root / FORMAT / n) if (root / FORMAT / n).exists() else 0.0,
                         last_used(root / LEGACY / n) if (root / LEGACY / n).exists() else 0.0)
                  < cutoff]
    return chosen


def _remove(path: Path) -> int:
    """Remove a folder: renamed away first (it disappears at once), then deleted."""
    import shutil
    import uuid

    if not path.exists():
        return 0
    size = _size(path)
    away = path.with_name(f".deleting-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, away)
    except OSError:
        away = path
    shutil.rmtree(away, ignore_errors=True)
    return size


def prune(root: str | Path | None = None, *, older_than_days: float | None = None,
          fingerprint: str | None = None, legacy: bool = False, dry_run: bool = False,
          now: float | None = None) -> dict:
    import shutil

    from evalharness.embeddings.cache import collect_garbage, default_cache_dir, folder_lock

    root = Path(root) if root else default_cache_dir()
    now = time.time() if now is None else now
    if older_than_days is not None and older_than_days < 0:
        raise UserError(f"--older-than must be >= 0 days, got {older_than_days}")
    report = {"root": str(root), "removed": [], "bytes_freed": 0, "dry_run": dry_run}
    if fingerprint or older_than_days is not None:
        for fp in _select(root, fingerprint, older_than_days, now=now):
            size = sum(_size(root / fmt / fp) for fmt in (FORMAT, LEGACY))
            report["removed"].append(fp)
            report["bytes_freed"] += size
            if not dry_run:
                for fmt in (FORMAT, LEGACY):
                    _remove(root / fmt / fp)
    if legacy and (root / LEGACY).exists():
        report["legacy_removed"] = True
        report["bytes_freed"] += _size(root / LEGACY) if dry_run else _remove(root / LEGACY)
    # garbage and shards set aside as damaged, in what is left
    for fp_dir in _dirs(root / FORMAT):
        for path in _damaged_files(fp_dir):
            try:
                report["bytes_freed"] += path.stat().st_size
                if not dry_run:
                    path.unlink()
            except OSError:
                pass
        for role_dir in _role_dirs(fp_dir):
            if dry_run:
                report["bytes_freed"] += _garbage(role_dir, now)
                continue
            with folder_lock(role_dir):
                report["bytes_freed"] += collect_garbage(role_dir, now=now)
    for stale in (root / FORMAT).glob(".deleting-*") if (root / FORMAT).exists() else []:
        if not dry_run:
            shutil.rmtree(stale, ignore_errors=True)
    return report


# -- CLI ---------------------------------------------------------------------------------
def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _print_info(rep: dict, out) -> None:
    print(f"cache: {rep['root']} (format {rep['format']})", file=out)
    if not rep["exists"]:
        print("  (empty: no such folder yet)", file=out)
        return
    token_rows = sum(r["vectors"] for fp in rep["fingerprints"]
                     if fp["fingerprint"].startswith("tokens-") for r in fp["roles"].values())
    print(f"  {human(rep['bytes'])}: {len(rep['fingerprints'])} fingerprint(s), "
          f"{rep['segments']} index segment(s), {rep['data_files']} data file(s), "
          f"{rep['vectors'] - token_rows:,} vectors"
          + (f" (and the token ids of {token_rows:,} texts)" if token_rows else ""), file=out)
    # token ids of the token path sit beside the vectors: fingerprints "tokens-...", one
    # row (not a vector) per text, roles w16, w32, ... (docs/cache.md)
    width = max([34] + [len(fp["fingerprint"]) + 2 for fp in rep["fingerprints"]])
    if rep["fingerprints"]:
        print(f"  {'fingerprint':<{width}} {'last used (UTC)':<17} {'vectors':>11} {'size':>9}  "
              "roles", file=out)
    for fp in sorted(rep["fingerprints"], key=lambda f: f["last_used"] or "", reverse=True):
        vectors = sum(r["vectors"] for k, r in fp["roles"].items() if k != "tokens")
        roles = ", ".join(f"{k}({'/'.join(map(str, r['dim'])) or '-'})"
                          for k, r in fp["roles"].items())
        if fp["fingerprint"].startswith("tokens-"):
            roles = f"token ids of {vectors:,} texts: {roles}"
        print(f"  {fp['fingerprint']:<{width}} {fp['last_used'] or '-':<17} {vectors:>11,} "
              f"{human(fp['bytes']):>9}  {roles}", file=out)
    print(f"  damaged shards set aside: {rep['damaged']}; garbage from interrupted writes: "
          f"{human(rep['garbage_bytes'])} (`evalharness cache prune` removes both)", file=out)
    if rep["legacy"]:
        lg = rep["legacy"]
        print(f"  legacy v1 folder: {human(lg['bytes'])}, {lg['fingerprints']} fingerprint(s) "
              "(read and imported into v2 when a run needs them; "
              "`evalharness cache prune --legacy` removes it)", file=out)
    for name, size in rep["other_bytes"].items():
        print(f"  {name}/: {human(size)}", file=out)


def run(args, out=None) -> int:
    """``evalharness cache ...`` (cli.py delegates here)."""
    from evalharness.embeddings.cache import default_cache_dir

    out = out or sys.stdout
    root = Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_cache_dir()
    as_json = getattr(args, "json", False)
    action = args.cache_action
    if action == "info":
        rep = info(root)
        print(json.dumps(rep, indent=2), file=out) if as_json else _print_info(rep, out)
        return 0
    if action == "verify":
        rep = verify(root, getattr(args, "fingerprint", None))
        if as_json:
            print(json.dumps(rep, indent=2), file=out)
        else:
            print(f"checked {rep['segments']} index segment(s), {rep['data_files']} data "
                  f"file(s), {human(rep['bytes_checked'])} in {rep['root']}", file=out)
            for d in rep["damaged"]:
                print(f"  DAMAGED {d['path']}: {d['problem']} (set aside; its texts are "
                      "re-encoded by the next run)", file=out)
            print("ok" if rep["ok"] else f"{len(rep['damaged'])} damaged shard(s)", file=out)
        return 0 if rep["ok"] else 1
    if action == "prune":
        rep = prune(root, older_than_days=getattr(args, "older_than", None),
                    fingerprint=getattr(args, "fingerprint", None),
                    legacy=getattr(args, "legacy", False),
                    dry_run=getattr(args, "dry_run", False))
        if as_json:
            print(json.dumps(rep, indent=2), file=out)
        else:
            verb = "would remove" if rep["dry_run"] else "removed"
            for fp in rep["removed"]:
                print(f"  {verb} {fp}", file=out)
            if rep.get("legacy_removed"):
                print(f"  {verb} the legacy v1 folder", file=out)
            print(f"{verb} {len(rep['removed'])} fingerprint(s); "
                  f"{human(rep['bytes_freed'])} freed" + (" (dry run)" if rep["dry_run"] else ""),
                  file=out)
        return 0
    raise UserError(f"unknown cache action '{action}'", hint="info, verify or prune")


def add_arguments(parser) -> None:
    """The ``cache`` subcommand's arguments (cli.py's build_parser calls this)."""
    sub = parser.add_subparsers(dest="cache_action", required=True, metavar="info|verify|prune")
    for name, text in (("info", "size, fingerprints, shards, damaged shards"),
                       ("verify", "check every checksum; set damaged shards aside (exit 1)"),
                       ("prune", "remove fingerprints by age or name, the v1 folder, garbage")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--cache-dir", help="cache folder (default: $EVALHARNESS_CACHE or the "
                       "per-user cache dir)")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        if name in ("verify", "prune"):
            p.add_argument("--fingerprint", metavar="FP", help="only this fingerprint "
                           "(a unique prefix is enough)")
        if name == "prune":
            p.add_argument("--older-than", type=float, metavar="DAYS",
                           help="fingerprints no run has used for DAYS days")
            p.add_argument("--legacy", action="store_true", help="remove the v1 folder")
            p.add_argument("--dry-run", action="store_true", help="say what would go")

"""evalharness.atomic.write_atomic: text and bytes, parents created, the target replaced
whole, shared permissions, and no temporary file left behind when the write fails."""

from __future__ import annotations

import os
import stat

import pytest

from evalharness import results
from evalharness.atomic import write_atomic


def test_text_and_bytes_and_parents(tmp_path):
    target = tmp_path / "a" / "b" / "report.html"
    write_atomic(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode("utf-8")
    write_atomic(target, b"\x00\xffraw")
    assert target.read_bytes() == b"\x00\xffraw"
    assert os.listdir(target.parent) == ["report.html"]  # no temporary file left


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # neither text nor bytes: the write fails midway
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]


def test_results_reexports_the_one_helper():
    assert results.write_atomic is write_atomic

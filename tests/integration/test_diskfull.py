"""Disk full: the import stops with a clear error, nothing acknowledged is lost, the store
stays consistent, and the import completes once space is available."""
import collections
import errno
import os
import subprocess

import pytest

from conftest import CORPUS_COUNT, Arca, describe, decode, read_commit_log


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        msg = p.stderr.strip()
        if os.geteuid() != 0 or "permission denied" in msg.lower() or "not permitted" in msg.lower():
            pytest.skip("cannot mount a tmpfs here (%s): %s" % (errno.errorcode[errno.EPERM], msg))
        raise AssertionError("mount tmpfs failed: %s" % msg)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_then_resume(small_fs, tmp_path, corpus):
    inst = Arca(small_fs / "base", tmp_path / "instance.key")
    inst.init()
    log = tmp_path / "commit.log"
    p = inst.run("import", "--archive", "alice", "--folder", "Corpus", "--commit-log", log,
                 "--batch", "200", "--quiet", corpus.dir, check=False)
    assert p.returncode != 0, "import into a 12 MB file system succeeded?\n" + describe(p)
    assert p.returncode == 1, "expected exit 1\n" + describe(p)
    err = decode(p.stderr).lower()
    assert "no space left" in err or "disk full" in err, "unclear disk-full error\n" + describe(p)
    committed = read_commit_log(log)
    count = inst.folder_count("alice", "Corpus") or 0
    assert count >= len(committed), "folder holds %d, commit log acknowledged %d" % (
        count, len(committed))
    rc, data = inst.verify()
    assert rc == 0, "verify after disk full: %r" % data["damaged"][:10]

    r = subprocess.run(["mount", "-o", "remount,size=400m", str(small_fs)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    s = inst.import_(corpus.dir, "alice", "Corpus", "--commit-log", log, "--batch", "200")
    assert s["errors"] == 0, s
    assert inst.folder_count("alice", "Corpus") == CORPUS_COUNT, inst.folders()
    inst.assert_verify_clean(expect_checked=CORPUS_COUNT)
    exported = inst.export_eml(tmp_path / "export", "--archive", "alice", "--folder", "Corpus")
    assert collections.Counter(exported.values()) == corpus.shas
    assert set(committed) <= set(exported.values()), "acknowledged messages lost"

"""Damage detection and recovery: a flipped byte, a truncated container, a lost metadata
database."""
import collections
import os
import random

import pytest

from conftest import (CORPUS_COUNT, ID_RE, describe, distinctive_subjects, new_arca,
                      parse_container, search, sha256)

FOLDERS = (("alice", "Corpus"), ("alice", "Copy"), ("bob", "Inbox"))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, corpus):
    """The corpus in alice/Corpus, alice/Copy and bob/Inbox; exports of each folder."""
    root = tmp_path_factory.mktemp("corruption")
    a = new_arca(root / "pristine")
    for archive, folder in FOLDERS:
        s = a.import_(corpus.dir, archive, folder)
        assert s["errors"] == 0, s
    a.exports = {}
    for archive, folder in FOLDERS:
        a.exports[(archive, folder)] = a.export_eml(root / ("export-%s-%s" % (archive, folder)),
                                                    "--archive", archive, "--folder", folder)
    a.id_sha = a.exports[("alice", "Corpus")]
    assert len(a.id_sha) == CORPUS_COUNT
    a.folder_list = sorted((f["archive"], f["folder"], f["messages"]) for f in a.folders())
    a.assert_verify_clean(expect_checked=CORPUS_COUNT)
    return a


def containers(inst):
    """Container files of store 1 (the content directory also holds the wrapped store key)."""
    files = [f for f in inst.content_files(1) if not f.name.endswith(".key")]
    assert files, "no container files in store 1"
    return files


def id_key(msg_id):
    store, n = msg_id.split(":")
    return int(store), int(n)


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def check_gets(inst, id_sha, ids, damaged):
    for msg_id in ids:
        p = inst.get(msg_id, check=False)
        if msg_id in damaged:
            assert p.returncode == 1, "get of damaged %s: expected exit 1\n%s" % (msg_id, describe(p))
            assert p.stderr.startswith(b"arcactl: "), describe(p)
        else:
            assert p.returncode == 0, "get of undamaged %s failed\n%s" % (msg_id, describe(p))
            assert sha256(p.stdout) == id_sha[msg_id], "get %s returned wrong bytes" % msg_id


def test_flipped_byte_damages_exactly_one_message(pristine, tmp_path):
    inst = pristine.copy(tmp_path / "flip")
    target = max(containers(inst), key=lambda f: f.stat().st_size)
    records = [r for r in parse_container(target) if r[1] == 1]
    # a content record in the middle of the container; a byte in the middle of its ciphertext
    off, _type, length, seq = records[len(records) // 2]
    offset = off + 36 + (length - 52) // 2
    expected = "1:%d" % seq
    flip_byte(target, offset)
    rc, data = inst.verify()
    assert rc == 3, "verify did not detect a flipped byte at %s+%d: %r" % (target, offset, data)
    assert data["checked"] == CORPUS_COUNT, data["checked"]
    damaged = [d.get("id") for d in data["damaged"]]
    assert damaged == [expected], "flipped a byte of %s's record; verify reports %r" % (
        expected, data["damaged"][:10])
    assert data["damaged"][0].get("reason"), "damaged entry without a reason: %r" % data["damaged"]
    others = sorted(set(pristine.id_sha) - set(damaged))
    sample = random.Random(5).sample(others, 200)
    check_gets(inst, pristine.id_sha, sample + damaged, set(damaged))


def test_flipped_byte_in_dictionary_costs_no_message(pristine, tmp_path):
    """A store's zstd dictionary is stored twice (docs/storage-format.md): a flipped byte in
    one copy is reported, and every message that depends on the dictionary still reads."""
    inst = pristine.copy(tmp_path / "dict")
    target = containers(inst)[0]
    dicts = [r for r in parse_container(target) if r[1] == 3]
    assert len(dicts) >= 2, "test setup: expected two dictionary copies, found %r" % dicts
    off, _type, length, _seq = dicts[0]
    offset = off + 36 + (length - 52) // 2
    flip_byte(target, offset)
    rc, data = inst.verify()
    assert rc == 3, "verify did not detect a flipped byte in the dictionary: %r" % data
    assert data["checked"] == CORPUS_COUNT, data["checked"]
    named = [d for d in data["damaged"] if ID_RE.match(str(d.get("id")))]
    assert not named, "a damaged dictionary copy made messages unreadable: %r" % named[:5]
    assert len(data["damaged"]) == 1 and "dictionary" in data["damaged"][0]["reason"], data
    exported = inst.export_eml(tmp_path / "dict-export", "--archive", "alice", "--folder",
                               "Corpus")
    assert exported == pristine.id_sha, "export after the flip differs"


def truncate_last_container(inst, cut):
    last = containers(inst)[-1]
    records = parse_container(last)
    size = last.stat().st_size
    new_size = size - cut
    os.truncate(last, new_size)
    cut_content = {"1:%d" % seq for off, t, length, seq in records if t == 1 and off + length > new_size}
    cut_links = [seq for off, t, length, seq in records if t == 2 and off + length > new_size]
    return last, cut_content, cut_links


def test_truncated_container_names_cut_messages(pristine, tmp_path):
    inst = pristine.copy(tmp_path / "trunc")
    last, cut_content, _links = truncate_last_container(inst, 40_000)
    assert cut_content, "test setup: the cut should reach content records"
    rc, data = inst.verify()
    assert rc == 3, "verify did not detect truncation of %s: %r" % (last, data)
    named = [d.get("id") for d in data["damaged"] if ID_RE.match(str(d.get("id")))]
    assert len(set(named)) == len(named), "a message listed twice: %r" % named
    assert set(named) == cut_content, "records cut: %s; verify names %s" % (
        sorted(cut_content, key=id_key), sorted(named, key=id_key))
    assert data["checked"] == CORPUS_COUNT, data["checked"]
    ids = sorted(pristine.id_sha, key=id_key)
    newest = ids[-300:]
    sample = random.Random(6).sample(ids[:-300], 100)
    check_gets(inst, pristine.id_sha, sorted(set(newest + sample) | cut_content), cut_content)


def test_truncation_reports_lost_links_records(pristine, tmp_path):
    """The last container ends with the links records (folder memberships of the 2nd and 3rd
    import, needed by recreate). Losing them entirely must be reported too."""
    inst = pristine.copy(tmp_path / "trunc-links")
    last, _content, cut_links = truncate_last_container(inst, 40_000)
    assert cut_links, "test setup: the cut should include links records"
    rc, data = inst.verify()
    other = [d for d in data["damaged"] if not ID_RE.match(str(d.get("id")))]
    assert other, ("%d links records (batches %s) were cut off %s, but verify reports only "
                   "message damage: %r" % (len(cut_links), cut_links, last.name,
                                           data["damaged"][:3]))


def test_partly_cut_links_record_is_reported(pristine, tmp_path):
    inst = pristine.copy(tmp_path / "trunc-links2")
    last, cut_content, cut_links = truncate_last_container(inst, 100)
    assert cut_links and not cut_content, "test setup: only the last links record is cut"
    rc, data = inst.verify()
    assert rc == 3, "verify missed a cut links record: %r" % (data,)
    assert not [d for d in data["damaged"] if ID_RE.match(str(d.get("id")))], data


def test_recreate_metadata_from_containers(pristine, corpus, tmp_path):
    inst = pristine.copy(tmp_path / "recreate")
    meta, content, _index = inst.store_paths(1)
    assert meta.exists(), "metadata database of store 1 not found at %s" % meta
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = str(meta) + suffix
        if os.path.exists(p):
            os.unlink(p)
    p = inst.run("recreate", "--store", "1", check=False)
    assert p.returncode == 0, "recreate failed\n" + describe(p)
    after = sorted((f["archive"], f["folder"], f["messages"]) for f in inst.folders())
    assert after == pristine.folder_list, "folders before %r, after recreate %r" % (
        pristine.folder_list, after)
    for archive, folder in FOLDERS:
        got = inst.export_eml(tmp_path / ("x-%s-%s" % (archive, folder)),
                              "--archive", archive, "--folder", folder)
        assert collections.Counter(got.values()) == collections.Counter(
            pristine.exports[(archive, folder)].values()), "%s/%s differs after recreate" % (
            archive, folder)
    inst.assert_verify_clean(expect_checked=CORPUS_COUNT)
    for subject, _path in distinctive_subjects(corpus, 3):
        hits = search(inst, '"%s"' % subject, "--archive", "bob", "--per-page", "20")
        assert any(h.get("subject") == subject for h in hits), (
            "search for %r after recreate: %r" % (subject, [h.get("subject") for h in hits]))


def test_recreate_keeps_message_ids(pristine, tmp_path):
    """Message ids are referenced from outside the store (IMAP UIDs, audit log, search
    results); recreating the metadata database should give every message its old id."""
    inst = pristine.copy(tmp_path / "recreate-ids")
    meta, _content, _index = inst.store_paths(1)
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(str(meta) + suffix):
            os.unlink(str(meta) + suffix)
    inst.run("recreate", "--store", "1")
    got = inst.export_eml(tmp_path / "x", "--archive", "alice", "--folder", "Corpus")
    changed = [i for i in pristine.id_sha if got.get(i) != pristine.id_sha[i]]
    assert not changed, "%d message ids changed meaning after recreate, e.g. %r" % (
        len(changed), changed[:5])

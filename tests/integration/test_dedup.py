"""Deduplication: the same content imported into more folders and archives is stored once."""
import pytest

from conftest import CORPUS_COUNT, new_arca, stats_content_records, tree_bytes


@pytest.fixture(scope="module")
def dedup(tmp_path_factory, corpus):
    """Imports the corpus into alice/A, alice/B, bob/Inbox, measuring after each step."""
    a = new_arca(tmp_path_factory.mktemp("dedup"))
    steps = {}
    for name, archive, folder in (("first", "alice", "A"), ("second", "alice", "B"),
                                  ("third", "bob", "Inbox")):
        summary = a.import_(corpus.dir, archive, folder)
        # measured after the arcactl process has exited (WAL files included as they are)
        steps[name] = {"summary": summary, "bytes": tree_bytes(a.base), "stats": a.json("stats")}
    a.steps = steps
    return a


def test_first_import(dedup):
    s = dedup.steps["first"]["summary"]
    assert (s["archived"], s["duplicates"], s["errors"]) == (CORPUS_COUNT, 0, 0), s
    assert stats_content_records(dedup.steps["first"]["stats"]) == CORPUS_COUNT


@pytest.mark.parametrize("step", ["second", "third"])
def test_reimport_is_all_duplicates(dedup, step):
    s = dedup.steps[step]["summary"]
    assert s["duplicates"] == CORPUS_COUNT, s
    assert s.get("new_content", 0) == 0, s
    assert s["errors"] == 0, s
    assert stats_content_records(dedup.steps[step]["stats"]) == CORPUS_COUNT, (
        "content records changed: %r" % (dedup.steps[step]["stats"],))


def test_reimport_grows_disk_less_than_2_percent(dedup):
    """The issue's point 3: the same corpus again into another folder of the same archive."""
    before_app, before_alloc = dedup.steps["first"]["bytes"]
    after_app, after_alloc = dedup.steps["second"]["bytes"]
    growth = (after_app - before_app) / before_app
    assert growth < 0.02, (
        "after the second import the base dir grew by %.1f%% (apparent %d -> %d bytes; allocated "
        "%d -> %d)" % (growth * 100, before_app, after_app, before_alloc, after_alloc))


def test_other_archive_adds_only_its_index(dedup):
    """Into another user's archive: content and metadata grow < 2%; that archive gets its own
    search index (one index per archive keeps each user's search latency independent of
    other archives, docs/ARCHITECTURE.md), about as large as the first archive's."""
    def parts(step):
        st = dedup.steps[step]["stats"]["total"]
        return st["stored_bytes"] + st["meta_bytes"], st["index_bytes"]
    cm1, ix1 = parts("second")
    cm2, ix2 = parts("third")
    assert (cm2 - cm1) / cm1 < 0.02, "content+metadata grew from %d to %d" % (cm1, cm2)
    assert ix2 - ix1 <= ix1 * 1.05, "bob's index %d bytes vs alice's %d" % (ix2 - ix1, ix1)


def test_folders_list_every_copy(dedup):
    got = sorted((f["archive"], f["folder"], f["messages"]) for f in dedup.folders())
    assert got == [("alice", "A", CORPUS_COUNT), ("alice", "B", CORPUS_COUNT),
                   ("bob", "Inbox", CORPUS_COUNT)], got


def test_archives_counts(dedup):
    data = dedup.json("archives")
    if isinstance(data, dict) and "archives" in data:
        data = data["archives"]
    counts = {}
    for entry in data:
        name = entry.get("name", entry.get("archive"))
        counts[name] = entry.get("messages")
    assert counts == {"alice": CORPUS_COUNT, "bob": CORPUS_COUNT}, data


def test_verify_after_dedup(dedup):
    dedup.assert_verify_clean(expect_checked=CORPUS_COUNT)

"""Bytes in are bytes out: import the corpus, export it as eml and as mbox, get single messages."""
import collections
import random
import re

from conftest import CORPUS_COUNT, ID_RE, searchable_ids, sha256


def test_import_summary(corpus_instance):
    s = corpus_instance.import_summary
    assert s["archived"] == CORPUS_COUNT, s
    assert s["errors"] == 0, s
    assert s["duplicates"] == 0, s
    assert s["batches"] >= 1, s


def test_folder_count(corpus_instance):
    assert corpus_instance.folder_count("alice", "Corpus") == CORPUS_COUNT, corpus_instance.folders()


def test_export_eml_is_byte_identical(corpus, corpus_export):
    assert len(corpus_export) == CORPUS_COUNT, "exported %d files" % len(corpus_export)
    bad_names = [k for k in corpus_export if not ID_RE.match(k)]
    assert not bad_names, "export file names are not <id>.eml: %r" % bad_names[:5]
    exported = collections.Counter(corpus_export.values())
    missing = corpus.shas - exported
    extra = exported - corpus.shas
    assert not missing and not extra, (
        "%d corpus messages not exported byte-identical (e.g. %s), %d exported files not in the "
        "corpus" % (sum(missing.values()),
                    [corpus.file_by_sha[s].name for s in list(missing)[:5]], sum(extra.values())))


def test_get_is_byte_identical(corpus, corpus_instance, corpus_export):
    rng = random.Random(1)
    ids = sorted(corpus_export)
    sample = rng.sample(ids, 40)
    # include the awkward ones: no final newline, CRLF, an embedded "\nFrom " line
    wanted = {"hard-ham-1-00228.eml", "spam-2-00083.eml", "hard-ham-1-00108.eml"}
    by_sha = {v: k for k, v in corpus_export.items()}
    for p in corpus.files:
        if p.name in wanted:
            sample.append(by_sha[corpus.sha_by_file[p]])
    for msg_id in sample:
        p = corpus_instance.get(msg_id)
        want = corpus.file_by_sha[corpus_export[msg_id]]
        assert p.stdout == want.read_bytes(), "get %s differs from %s" % (msg_id, want.name)


def test_get_out_file(corpus, corpus_instance, corpus_export, tmp_path):
    msg_id = sorted(corpus_export)[7]
    out = tmp_path / "one.eml"
    corpus_instance.run("get", msg_id, "--out", out)
    assert sha256(out.read_bytes()) == corpus_export[msg_id]


def split_mboxrd(data):
    """Independent mboxrd reader (diagnostics only): list of message bytes."""
    msgs = []
    parts = re.split(rb"(?:^|\n)From [^\n]*\n", data)
    for part in parts[1:]:
        lines = part.split(b"\n")
        lines = [l[1:] if re.match(rb"^>+From ", l) else l for l in lines]
        msgs.append(b"\n".join(lines))
    return msgs


def test_export_mbox_reimport_dedups(corpus, corpus_instance, tmp_path):
    """mboxrd export + re-import into another archive: every message is found to be a
    duplicate of the stored content (From_ quoting round-trips exactly)."""
    inst = corpus_instance.copy(tmp_path / "copy")
    mbox = tmp_path / "corpus.mbox"
    inst.run("export", "--archive", "alice", "--folder", "Corpus", "--format", "mbox", "--out", mbox)
    data = mbox.read_bytes()
    assert data.startswith(b"From "), "mbox export does not start with a From_ line: %r" % data[:80]
    separators = len(re.findall(rb"(?:^|\n)From ", data))
    assert separators == CORPUS_COUNT, (
        "mbox has %d unquoted From_ lines, expected %d (a body line 'From ' was not quoted?)"
        % (separators, CORPUS_COUNT))

    s = inst.import_(mbox, "bob", "FromMbox", "--format", "mbox")
    if s["duplicates"] != CORPUS_COUNT:
        # diagnostics: which messages did the export/import change?
        mine = collections.Counter(sha256(m) for m in split_mboxrd(data))
        lost = corpus.shas - mine
        trailing = collections.Counter(sha256(m[:-1]) for m in split_mboxrd(data) if m.endswith(b"\n"))
        lost2 = lost - trailing
        raise AssertionError(
            "mbox re-import: %r; expected duplicates=%d. An independent mboxrd reader finds %d "
            "corpus messages not byte-identical in the export (%d when a trailing separator "
            "newline is dropped), e.g. %s"
            % ({k: v for k, v in s.items() if not k.startswith("_")}, CORPUS_COUNT,
               sum(lost.values()), sum(lost2.values()),
               [corpus.file_by_sha[x].name for x in list(lost2 or lost)[:5]]))
    assert s["errors"] == 0, s
    assert inst.folder_count("bob", "FromMbox") == CORPUS_COUNT, inst.folders()
    # no new content: exported bob folder has exactly the corpus shas
    exported = inst.export_eml(tmp_path / "bob", "--archive", "bob", "--folder", "FromMbox")
    assert collections.Counter(exported.values()) == corpus.shas, "bob's folder differs from corpus"


def test_every_message_is_searchable(corpus_instance, corpus_export):
    assert searchable_ids(corpus_instance) == set(corpus_export)

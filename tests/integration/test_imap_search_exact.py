"""IMAP SEARCH text keys answered through the index give exactly the answer of checking every
message (docs/imap.md, "How text keys are answered"): the whole SpamAssassin corpus in one
folder, served twice, by one daemon with the archive's index and by one on a copy without it
(every message is then read and checked). Every key below must return the same UIDs from both:
whole words, words inside longer words, words only in header fields the archive's search does
not keep (Received, X-*), words only in an HTML alternative, phrases, field keys, strings that
start or end with punctuation, and strings that full case folding matches ("strasse")."""
import pytest

from arcad import Arcad, create_user

PASSWORD = "alice-pw-1"

KEYS = [
    "TEXT linux", "TEXT money", "TEXT mortgage", "TEXT python", "TEXT lottery",
    "TEXT oba",                        # inside words
    "TEXT spamassassin",               # mostly in Received / Delivered-To / List-* fields
    "TEXT assassin", "BODY nux", "BODY inux", "TEXT ation",
    'TEXT "click here"', 'BODY "free money"', 'TEXT "ation of"', 'TEXT "of the"',
    "TEXT strasse", "TEXT STRASSE",
    "SUBJECT money", "SUBJECT ILL", "FROM linux", "FROM xent", "TO linux", "CC razor",
    'FROM "@example.com"', "HEADER Received linux", "HEADER X-Mailer mutt",
    "HEADER Message-ID localhost", "HEADER References xent", "HEADER Return-Path bounce",
    'HEADER Content-Type "charset=iso-8859-1"',
    "BODY html", "BODY nbsp", "TEXT 2002", 'TEXT "list-unsubscribe:"',
    'TEXT "dmin@"', "NOT TEXT spam", "OR SUBJECT linux BODY python",
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory, corpus_instance):
    tmp = tmp_path_factory.mktemp("search-exact")
    with_ix = corpus_instance.copy(tmp / "indexed")
    without = corpus_instance.copy(tmp / "scanned")
    for ix in without.base.glob("stores/*/index/a*.db*"):
        ix.unlink()
    out = []
    try:
        for name, arca in (("indexed", with_ix), ("scanned", without)):
            create_user(arca, "alice", PASSWORD)
            wd = tmp / ("run-" + name)
            wd.mkdir()
            out.append(Arcad(arca, wd, extra=["--run-dir", str(wd / "run")]).start())
        yield out
    finally:
        for d in out:
            d.stop()


def uids(server, keys):
    c = server.login("alice", PASSWORD)
    try:
        typ, _ = c.select("Corpus", readonly=True)
        assert typ == "OK"
        out = {}
        for k in keys:
            typ, data = c.uid("SEARCH", k)
            assert typ == "OK", (k, data)
            out[k] = data[0].split()
        return out
    finally:
        c.logout()


def test_index_answers_equal_a_full_check(servers):
    indexed, scanned = (uids(s, KEYS) for s in servers)
    differ = {k: (len(indexed[k]), len(scanned[k])) for k in KEYS if indexed[k] != scanned[k]}
    assert not differ, "index vs full check (hits): %r" % differ
    # the keys are not all trivial: most find something, some find thousands
    assert sum(1 for k in KEYS if scanned[k]) >= len(KEYS) - 3
    assert len(scanned["TEXT spamassassin"]) > 3000
    assert len(scanned["TEXT oba"]) > 100
    assert scanned["TEXT strasse"] == scanned["TEXT STRASSE"]

"""Encryption at rest: no subject line or body phrase of the corpus appears in plaintext in
the content containers (and, separately, anywhere in the base directory)."""
import os
import random
import re
from pathlib import Path

import pytest

PRINTABLE = re.compile(rb"^[\x20-\x7e]+$")


def needles(corpus, n=200, seed=7):
    """(subjects, body phrases): raw ASCII byte strings taken from the corpus files."""
    rng = random.Random(seed)
    files = list(corpus.files)
    rng.shuffle(files)
    subjects, phrases = [], []
    for p in files:
        data = p.read_bytes()
        head, _sep, body = data.partition(b"\n\n")
        if len(subjects) < n:
            m = re.search(rb"(?im)^subject:[ \t]*(.+?)\r?$", head)
            if m:
                s = m.group(1).strip()
                if len(s) >= 12 and PRINTABLE.match(s) and b"=?" not in s and s not in subjects:
                    subjects.append(s)
        if len(phrases) < n:
            for line in body.split(b"\n"):
                line = line.rstrip(b"\r").strip()
                # a text line: printable, several words (not base64), not trivial
                if (len(line) >= 24 and PRINTABLE.match(line) and line.count(b" ") >= 3
                        and line not in phrases and not line.startswith(b">")):
                    phrases.append(line)
                    break
        if len(subjects) >= n and len(phrases) >= n:
            break
    assert len(subjects) >= n and len(phrases) >= n, (len(subjects), len(phrases))
    return subjects, phrases


def found_in(files, words):
    hits = {}
    for f in files:
        data = f.read_bytes()
        for w in words:
            if w in data:
                hits.setdefault(w, f)
    return hits


@pytest.fixture(scope="module")
def sample(corpus):
    return needles(corpus)


def test_positive_control(corpus, sample):
    subjects, phrases = sample
    hits = found_in(corpus.files, subjects + phrases)
    assert len(hits) == len(subjects) + len(phrases), "search misses words in the raw corpus"


def test_content_containers_hold_no_plaintext(corpus_instance, sample):
    subjects, phrases = sample
    files = corpus_instance.content_files()
    assert files, "no content container files found"
    total = sum(f.stat().st_size for f in files)
    assert total > 1_000_000, "content containers hold only %d bytes" % total
    hits = found_in(files, subjects + phrases)
    assert not hits, "%d of %d phrases found in plaintext in content containers, e.g. %r" % (
        len(hits), len(subjects) + len(phrases), [(w, str(f)) for w, f in list(hits.items())[:5]])


def test_base_directory_outside_index_holds_no_plaintext(corpus_instance, sample):
    """Every file of the base directory except the search indexes: metadata databases and the
    instance database hold hashes, sizes and names, never message text. (The FTS5 indexes
    hold words, subjects and senders in plaintext: a documented limitation, see
    docs/ARCHITECTURE.md, "What is encrypted".)"""
    subjects, phrases = sample
    files = []
    for dirpath, _dirs, names in os.walk(corpus_instance.base):
        if Path(dirpath).name == "index":
            continue
        files += [Path(dirpath) / n for n in names]
    assert any(f.name == "meta.db" for f in files) and any(f.name == "instance.db" for f in files)
    hits = found_in(files, subjects + phrases)
    by_file = {}
    for w, f in hits.items():
        by_file.setdefault(str(f.relative_to(corpus_instance.base)), []).append(w)
    assert not hits, "%d of %d phrases found in plaintext under the base directory: %r" % (
        len(hits), len(subjects) + len(phrases),
        {f: (len(ws), ws[:2]) for f, ws in by_file.items()})

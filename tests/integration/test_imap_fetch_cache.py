"""The IMAP FETCH cache (src/imap/fetch_cache.h; docs/imap.md "FETCH cache") and whole-message
FETCH items answered without a parse (src/imap/cmd_fetch.c).

Three daemons serve one copy of the corpus instance (the whole corpus in alice/Corpus): one with
the default cache, one whose 1 MiB cache cannot hold the folder's values (it evicts all the
time), and one with the cache off (--imap-cache-mb 0). Every FETCH must be byte-identical on
all three, the first metadata FETCH (which fills the cache) and the next ones (answered from it)
alike. Whole-message items (BODY[], BODY.PEEK[]<partial>, BINARY[], BINARY.SIZE[], RFC822) must
be the archived bytes, including for a message holding NUL bytes (BODY[] sends them as 0x80,
BINARY[] and RFC822 as a literal8, as for the other sections: src/imap/message.h)."""
import re

import pytest

from arcad import Arcad, create_user, make_instance
from conftest import sha256

META = "FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY INTERNALDATE RFC822.SIZE)"
PASSWORD = "alice-pw-1"


@pytest.fixture(scope="module")
def servers(tmp_path_factory, corpus_instance):
    tmp = tmp_path_factory.mktemp("fetch-cache")
    arca = corpus_instance.copy(tmp / "base")
    create_user(arca, "alice", PASSWORD)
    out = {}
    try:
        for name, extra in (("default", []), ("tiny", ["--imap-cache-mb", "1"]),
                            ("off", ["--imap-cache-mb", "0"])):
            wd = tmp / name
            wd.mkdir()
            out[name] = Arcad(arca, wd, extra=["--run-dir", str(wd / "run"), *extra]).start()
        yield out
    finally:
        for d in out.values():
            d.stop()


def session(server, folder="Corpus"):
    r = server.raw()
    assert r.read_line().startswith(b"* OK")
    assert r.cmd("L", "LOGIN alice %s" % PASSWORD).split(b"\r\n")[-2].startswith(b"L OK")
    assert r.cmd("S", 'EXAMINE "%s"' % folder).split(b"\r\n")[-2].startswith(b"S OK")
    return r


def run(server, cmds):
    """The responses to cmds on one connection, each with the tag "T" (the server does not
    mind a repeated tag; the same tag keeps responses comparable byte for byte)."""
    r = session(server)
    try:
        out = []
        for c in cmds:
            r.send("T %s\r\n" % c)
            out.append(r.read_response("T"))
    finally:
        r.close()
    for c, resp in zip(cmds, out):
        assert resp.endswith(b"\r\n") and resp.split(b"\r\n")[-2].startswith(b"T OK"), (
            "%s: %r" % (c, resp[-300:]))
    return out


def test_metadata_fetch_same_from_cache_and_messages(servers, corpus_instance):
    n = corpus_instance.folder_count("alice", "Corpus")
    cmds = [
        META,                       # fills the cache
        META,                       # from it
        "UID " + META,
        "FETCH %d:* (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE)" % max(1, n - 500),
        # cached values together with a section that needs the parse
        "FETCH 1:* (UID BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (Subject Date)] INTERNALDATE)",
        "FETCH 1:* (FULL MODSEQ)",
        "FETCH 1:* (ENVELOPE)",
    ]
    got = {name: run(d, cmds) for name, d in servers.items()}
    meta = got["off"][0]
    assert meta.count(b"\r\n* ") + meta.startswith(b"* ") == n
    assert meta.count(b"(ENVELOPE (") == n and meta.count(b" BODYSTRUCTURE (") == n
    for name in ("default", "tiny"):
        for c, a, b in zip(cmds, got[name], got["off"]):
            assert a == b, "%s: %s differs with --imap-cache-mb 0 (%d vs %d bytes)" % (
                name, c, len(a), len(b))
    # a second connection is answered from what the first one left in the cache
    assert run(servers["default"], [META]) == [meta]


ITEM = re.compile(rb" ?(BODY\[\](?:<\d+>)?|BINARY\[\](?:<\d+>)?|BINARY\.SIZE\[\]|RFC822\.SIZE|RFC822"
                  rb"|UID) ")
LITERAL = re.compile(rb"(~?)\{(\d+)\}\r\n")
NUMBER = re.compile(rb"\d+")
FETCH = re.compile(rb"\* (\d+) FETCH \(")


def fetch_items(resp):
    """{seq: {item name: int, or (is_literal8, bytes)}} of a FETCH response of whole-message
    items, numbers and UIDs."""
    out, pos = {}, 0
    while True:
        m = FETCH.match(resp, pos)
        if not m:
            break
        items, pos = {}, m.end()
        while resp[pos:pos + 1] != b")":
            im = ITEM.match(resp, pos)
            assert im, "cannot parse %r" % resp[pos:pos + 80]
            pos = im.end()
            lm = LITERAL.match(resp, pos)
            if lm:
                end = lm.end() + int(lm.group(2))
                items[im.group(1).decode()] = (lm.group(1) == b"~", resp[lm.end():end])
                pos = end
            else:
                nm = NUMBER.match(resp, pos)
                items[im.group(1).decode()] = int(nm.group())
                pos = nm.end()
        assert resp[pos:pos + 3] == b")\r\n"
        pos += 3
        out[int(m.group(1))] = items
    assert resp[pos:].startswith(b"T OK"), resp[pos:pos + 200]
    return out


def test_whole_message_items_are_the_archived_bytes(servers, corpus):
    d = servers["default"]
    resp, rfc822, mbsync = run(d, [
        "FETCH 1:* (BODY.PEEK[] RFC822.SIZE BODY.PEEK[]<10.200> BODY.PEEK[]<999999999.5> "
        "BINARY.PEEK[]<0.64> BINARY.SIZE[])",
        "FETCH 1:300 (RFC822)",
        "UID FETCH 1:40 (BODY.PEEK[])",
    ])
    msgs = fetch_items(resp)
    assert len(msgs) > 0
    shas = set()
    for seq, it in msgs.items():
        l8, body = it["BODY[]"]
        assert not l8
        shas.add(sha256(body))
        assert it["RFC822.SIZE"] == len(body) == it["BINARY.SIZE[]"]
        assert it["BODY[]<10>"] == (False, body[10:210])
        assert it["BODY[]<999999999>"] == (False, b"")
        assert it["BINARY[]<0>"] == (False, body[:64])
    assert shas == set(corpus.shas), "BODY[] of the folder is not the corpus"
    for seq, it in fetch_items(rfc822).items():
        assert it["RFC822"] == msgs[seq]["BODY[]"]
    for seq, it in fetch_items(mbsync).items():
        assert it["BODY[]"] == msgs[seq]["BODY[]"]


NUL_MSG = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: nul\r\nDate: Mon, 7 Feb 1994 "
           b"21:52:25 -0800\r\n\r\nbefore\x00after\r\nbare LF\nend\x00\r\n")


def test_whole_message_with_nul_bytes(tmp_path):
    arca = make_instance(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "nul.eml").write_bytes(NUL_MSG)
    arca.import_(src, "alice", "INBOX")
    d = Arcad(arca, tmp_path).start()
    try:
        r = session(d, "INBOX")
        try:
            resp = r.cmd("T", "FETCH 1 (BODY.PEEK[] BODY.PEEK[]<90.12> BINARY.PEEK[] BINARY.PEEK[]<90.12> "
                              "BINARY.SIZE[] RFC822 RFC822.SIZE)")
        finally:
            r.close()
    finally:
        d.stop()
    it = fetch_items(resp)[1]
    sent = NUL_MSG.replace(b"\x00", b"\x80")
    assert NUL_MSG[90:102].count(b"\x00") == 1, "the partial range must hold a NUL"
    assert it["BODY[]"] == (False, sent)
    assert it["BODY[]<90>"] == (False, sent[90:102])
    assert it["BINARY[]"] == (True, NUL_MSG)
    assert it["BINARY[]<90>"] == (True, NUL_MSG[90:102])
    assert it["BINARY.SIZE[]"] == it["RFC822.SIZE"] == len(NUL_MSG)
    assert it["RFC822"] == (True, NUL_MSG)

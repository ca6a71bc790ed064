"""IMAP SEARCH / SORT / THREAD against a running arcad (docs/imap.md): every key's meaning on
an archive (fixed flags, INTERNALDATE from the Date header, sizes), text keys answered by the
index and checked against the messages (and found without an index), ESEARCH, SEARCHRES,
MODSEQ, SORT and THREAD orders, and errors that leave the connection usable."""
import imaplib
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BUILD, make_msg

ARCAD = BUILD / "src" / "server" / "arcad"

# (name, message): imported in this order, so UID i+1 / sequence number i+1
MESSAGES = [
    ("plain", make_msg(subject="Quarterly invoice", body="Please pay the invoices by Friday.\n",
                       sender="Alice Example <alice@example.com>", to="bob@example.org",
                       date="Mon, 03 Jun 2024 10:00:00 +0000", msgid="<plain@t>")),
    ("reply", make_msg(subject="Re: Quarterly invoice", body="Paid. Foobar attached.\n",
                       sender="Bob Example <bob@example.org>", to="alice@example.com",
                       date="Tue, 04 Jun 2024 23:30:00 -0500", msgid="<reply@t>",
                       headers=("In-Reply-To: <plain@t>", "References: <plain@t>"))),
    ("other", make_msg(subject="Lunch", body="Caf\u00e9 at noon!!\n",
                       sender="=?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>", to="team@example.org",
                       date="Wed, 05 Jun 2024 12:00:00 +0200", msgid="<other@t>",
                       headers=("X-Custom: tracking-42", "Cc: carol@example.net"),
                       ctype="text/plain; charset=utf-8")),
    ("big", make_msg(subject="[list] Fwd: report", body="x" * 5000 + "\nreport attached\n",
                     sender="Zed <zed@example.com>", to="alice@example.com",
                     date="Thu, 06 Jun 2024 08:00:00 +0000", msgid="<big@t>")),
    ("nodate", b"From: nobody@example.com\nSubject: no date here\nMessage-ID: <nodate@t>\n\n"
               b"undated body\n"),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, arca, tmp_path):
        self.port = free_port()
        self.log = open(tmp_path / "arcad.log", "wb")
        self.proc = subprocess.Popen(
            [str(ARCAD), "instance", "--base", str(arca.base), "--key-file", str(arca.key_file),
             "--imap", "127.0.0.1:%d" % self.port, "--log-level", "debug"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise AssertionError("arcad did not start: %s" % (tmp_path / "arcad.log").read_text())

    def client(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        m = imaplib.IMAP4("127.0.0.1", self.port)
        m.starttls(ssl_context=ctx)
        m.login("alice", "secret")
        typ, _ = m.select("INBOX", readonly=True)
        assert typ == "OK"
        return m

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def setup_archive(arca, tmp_path, drop_index=False):
    src = tmp_path / "src"
    src.mkdir()
    for i, (_name, data) in enumerate(MESSAGES):
        (src / ("%02d.eml" % i)).write_bytes(data)
    arca.run("user", "create", "alice", "--password-stdin", input=b"secret\n")
    arca.import_(src, "alice", "INBOX")
    if drop_index:
        for ix in arca.base.glob("stores/*/index/a*.db*"):
            ix.unlink()


@pytest.fixture
def imap(arca, tmp_path):
    if not ARCAD.exists():
        pytest.skip("arcad not built")
    setup_archive(arca, tmp_path)
    srv = Server(arca, tmp_path)
    m = srv.client()
    yield m
    try:
        m.logout()
    finally:
        srv.stop()


def seqs(m, *criteria):
    typ, data = m.search(None, *criteria)
    assert typ == "OK", (criteria, data)
    return [int(x) for x in data[0].split()]


def raw(m, command):
    """Sends a command as is; returns (status, untagged lines, tagged text)."""
    tag = m._new_tag().decode()
    m.send(("%s %s\r\n" % (tag, command)).encode())
    untagged = []
    while True:
        line = m.readline().decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith(tag + " "):
            status, _, text = line[len(tag) + 1:].partition(" ")
            return status, untagged, text
        untagged.append(line)


def test_flag_size_and_date_keys(imap):
    assert seqs(imap, "ALL") == [1, 2, 3, 4, 5]
    assert seqs(imap, "SEEN OLD UNANSWERED UNDELETED UNDRAFT UNFLAGGED") == [1, 2, 3, 4, 5]
    assert seqs(imap, "UNKEYWORD", "$Junk") == [1, 2, 3, 4, 5]
    for k in ("UNSEEN", "NEW", "RECENT", "ANSWERED", "DELETED", "DRAFT", "FLAGGED"):
        assert seqs(imap, k) == [], k
    assert seqs(imap, "KEYWORD", "$Junk") == []
    assert seqs(imap, "LARGER", "4000") == [4]
    assert seqs(imap, "NOT", "LARGER", "4000") == [1, 2, 3, 5]
    # INTERNALDATE is the Date header on its own calendar: message 2 was written on 4 June
    # (-0500) although it was 5 June in UTC
    assert seqs(imap, "ON", "4-Jun-2024") == [2]
    assert seqs(imap, "SENTON", "4-Jun-2024") == [2]
    assert seqs(imap, "SENTBEFORE", "5-Jun-2024") == [1, 2]
    assert seqs(imap, "SENTSINCE", "5-Jun-2024") == [3, 4]
    # no Date header: archived just now, and no sent date at all
    assert 5 in seqs(imap, "SINCE", "1-Jan-2025")
    assert 5 not in seqs(imap, "SENTSINCE", "1-Jan-1971")
    assert seqs(imap, "2:3,5") == [2, 3, 5]
    assert seqs(imap, "4:*") == [4, 5]
    assert seqs(imap, "99") == []
    assert seqs(imap, "UID", "2,4") == [2, 4]
    assert seqs(imap, "OR", "1", "(LARGER 4000 SUBJECT report)") == [1, 4]


def test_text_keys(imap):
    assert seqs(imap, "SUBJECT", "invoice") == [1, 2]
    assert seqs(imap, "SUBJECT", "INVOIC") == [1, 2]          # prefix of a word
    assert seqs(imap, "SUBJECT", '"quarterly invoice"') == [1, 2]
    assert seqs(imap, "BODY", "invoices") == [1]
    assert seqs(imap, "BODY", "invoice") == [1]               # substring of "invoices"
    assert seqs(imap, "TEXT", "invoice") == [1, 2]            # TEXT includes the Subject
    assert seqs(imap, "BODY", "report") == [4]
    assert seqs(imap, "FROM", "alice") == [1]
    assert seqs(imap, "FROM", "joerg") == [3]
    assert seqs(imap, "TO", "example.org") == [1, 3]
    assert seqs(imap, "CC", "carol") == [3]
    assert seqs(imap, "BCC", "carol") == []
    assert seqs(imap, "HEADER", "X-Custom", "tracking") == [3]  # not indexed: every message
    assert seqs(imap, "HEADER", "X-Custom", '""') == [3]
    assert seqs(imap, "HEADER", "In-Reply-To", "plain@t") == [2]
    assert seqs(imap, "BODY", '"!!"') == [3]                   # no word: every message
    assert seqs(imap, "BODY", "oo") == [2, 3]                  # short: every message, exact
    assert seqs(imap, "NOT", "BODY", "invoice") == [2, 3, 4, 5]
    assert seqs(imap, "SUBJECT", '""') == [1, 2, 3, 4, 5]
    # a match that begins inside a word ("Foobar"): the index's vocabulary has it
    assert seqs(imap, "BODY", "oobar") == [2]
    assert seqs(imap, "BODY", '"obar attached"') == [2]
    assert seqs(imap, "BODY", "foobar") == [2]
    assert seqs(imap, "TEXT", "nvoice") == [1, 2]
    assert seqs(imap, "FROM", "xample.de") == [3]


def test_text_keys_without_index(arca, tmp_path):
    """Messages the index does not hold (here: no index at all) are read and checked."""
    if not ARCAD.exists():
        pytest.skip("arcad not built")
    setup_archive(arca, tmp_path, drop_index=True)
    srv = Server(arca, tmp_path)
    try:
        m = srv.client()
        assert seqs(m, "SUBJECT", "invoice") == [1, 2]
        assert seqs(m, "BODY", "oobar") == [2]    # every message is read: a true substring
        assert seqs(m, "TEXT", "carol") == [3]
        m.logout()
    finally:
        srv.stop()


# Messages the archive's MIME reader and the IMAP server's reader read differently without
# either noticing (src/archive/xtext.c): IMAP SEARCH must still find what the IMAP reader sees.
DIFFERENT = [
    b"From: a@example.com\nSubject: one\nMessage-ID: <d1@t>\nMIME-Version: 1.0\n"
    b"Content-Type: text\n\nzebraone in a type without subtype\n",
    b"From: a@example.com\nSubject: two\nMessage-ID: <d2@t>\nMIME-Version: 1.0\n"
    b"Content-Type: multipart/signed; boundary=b; protocol=\"application/pgp-signature\"\n\n"
    b"--b\nContent-Type: text/plain\n\nsigned text\n--b\nContent-Type: text/plain\n\n"
    b"zebratwo as the signature part\n--b--\n",
    b"From: a@example.com\nSubject: three\nMessage-ID: <d3@t>\n"
    b"Content-Transfer-Encoding: base64\n\nemVicmF0aHJlZQ==\n",
    b"From: a@example.com\nSubject: four\nMessage-ID: <d4@t>\nMIME-Version: 1.0\n"
    b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n"
    b"zebra= \nfour joined across a soft break\n",
    # U+0345 separates words for the index's tokenizer but folds to iota for IMAP's check
    b"From: a@example.com\nSubject: five\nMessage-ID: <d5@t>\nMIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n\nzebrafive \xce\xb1\xcd\x85\xce\xb2\xce\xb3\xce\xb4\xce\xb5\n",
]


def test_text_keys_where_readers_differ(arca, tmp_path):
    if not ARCAD.exists():
        pytest.skip("arcad not built")
    src = tmp_path / "diff"
    src.mkdir()
    for i, data in enumerate(DIFFERENT):
        (src / ("%02d.eml" % i)).write_bytes(data)
    arca.run("user", "create", "alice", "--password-stdin", input=b"secret\n")
    arca.import_(src, "alice", "INBOX")
    srv = Server(arca, tmp_path)
    try:
        m = srv.client()
        assert seqs(m, "BODY", "zebraone") == [1]
        assert seqs(m, "BODY", "ebraon") == [1]
        assert seqs(m, "BODY", "zebratwo") == [2]
        assert seqs(m, "TEXT", "zebratwo") == [2]
        assert seqs(m, "BODY", "emVicmF0aHJlZQ") == [3]   # IMAP reads it undecoded
        assert seqs(m, "BODY", "zebrafour") == [4]
        assert seqs(m, "TEXT", "RAFOU") == [4]
        m.literal = "\u03b1\u03b9\u03b2\u03b3\u03b4".encode()
        typ, data = m.search("UTF-8", "BODY")
        assert typ == "OK" and data[0].split() == [b"5"], data
        m.literal = "\u03b9\u03b2\u03b3".encode()
        typ, data = m.search("UTF-8", "BODY")
        assert typ == "OK" and data[0].split() == [b"5"], data
        m.logout()
    finally:
        srv.stop()


def test_charset_and_errors(imap):
    assert seqs(imap, "CHARSET", "UTF-8", "SUBJECT", "lunch") == [3]
    assert seqs(imap, "CHARSET", "us-ascii", "SUBJECT", "lunch") == [3]
    st, _, text = raw(imap, "SEARCH CHARSET ISO-8859-1 ALL")
    assert st == "NO" and text.startswith("[BADCHARSET (UTF-8 US-ASCII)]")
    st, _, text = raw(imap, "SEARCH FOO")
    assert (st, text) == ("BAD", "unknown search key FOO")
    st, _, text = raw(imap, "SEARCH BEFORE 31-Feb-2024")
    assert st == "BAD" and "date" in text
    st, _, text = raw(imap, "SEARCH OR ALL")
    assert st == "BAD"
    st, _, text = raw(imap, "SEARCH (ALL")
    assert st == "BAD"
    assert seqs(imap, "ALL") == [1, 2, 3, 4, 5]   # still usable


def test_esearch_searchres_modseq(imap):
    st, lines, _ = raw(imap, "SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT invoice")
    assert st == "OK"
    assert re.fullmatch(r'\* ESEARCH \(TAG "\w+"\) MIN 1 MAX 2 COUNT 2 ALL 1:2', lines[0]), lines
    st, lines, _ = raw(imap, "UID SEARCH RETURN () NOT SUBJECT invoice")
    assert re.fullmatch(r'\* ESEARCH \(TAG "\w+"\) UID ALL 3:5', lines[0]), lines
    st, lines, _ = raw(imap, "SEARCH RETURN (COUNT) SUBJECT nothing-like-this")
    assert re.fullmatch(r'\* ESEARCH \(TAG "\w+"\) COUNT 0', lines[0]), lines
    # SAVE alone answers nothing; $ is then usable, also inside SEARCH
    st, lines, _ = raw(imap, "SEARCH RETURN (SAVE) OR SUBJECT lunch LARGER 4000")
    assert st == "OK" and lines == []
    assert seqs(imap, "$") == [3, 4]
    assert seqs(imap, "UID", "$", "LARGER", "4000") == [4]
    st, lines, _ = raw(imap, "FETCH $ (UID)")
    assert st == "OK" and len(lines) == 2
    # MIN/MAX with SAVE saves only those
    raw(imap, "SEARCH RETURN (SAVE MIN) ALL")
    assert seqs(imap, "$") == [1]
    # MODSEQ: a message's mod-sequence is its UID
    st, lines, _ = raw(imap, "SEARCH MODSEQ 4")
    assert lines == ["* SEARCH 4 5 (MODSEQ 5)"], lines
    st, lines, _ = raw(imap, "SEARCH RETURN (COUNT) MODSEQ 2")
    assert re.fullmatch(r'\* ESEARCH \(TAG "\w+"\) COUNT 4 MODSEQ 5', lines[0]), lines


def test_sort(imap):
    def sort(crit, keys="ALL"):
        st, lines, text = raw(imap, "SORT (%s) UTF-8 %s" % (crit, keys))
        assert st == "OK", text
        return [int(x) for x in lines[0].split()[2:]]
    assert sort("SIZE")[-1] == 4
    assert sort("REVERSE SIZE")[0] == 4
    assert sort("DATE", "NOT 5") == [1, 2, 3, 4]
    assert sort("REVERSE DATE", "NOT 5") == [4, 3, 2, 1]
    # base subjects: Lunch, no date here, Quarterly invoice (1, 2: "Re:" removed), report
    # ("[list] Fwd:" removed)
    assert sort("SUBJECT") == [3, 5, 1, 2, 4]
    assert sort("FROM") == [1, 2, 3, 5, 4]           # alice bob joerg nobody zed
    assert sort("DISPLAYFROM") == [1, 2, 3, 5, 4]    # Alice Bob Jörg nobody@ Zed
    # To: "" (none) < alice (2, 4: then by subject) < bob < team
    assert sort("TO SUBJECT") == [5, 2, 4, 1, 3]
    st, _, text = raw(imap, "SORT (BOGUS) UTF-8 ALL")
    assert st == "BAD"
    st, _, text = raw(imap, "SORT (DATE) KOI8-R ALL")
    assert st == "NO" and "BADCHARSET" in text


def test_thread(imap):
    st, lines, _ = raw(imap, "THREAD REFERENCES UTF-8 ALL")
    assert st == "OK"
    assert lines == ["* THREAD (1 2)(3)(4)(5)"], lines
    st, lines, _ = raw(imap, "THREAD ORDEREDSUBJECT UTF-8 NOT 5")
    assert lines == ["* THREAD (1 2)(3)(4)"], lines
    st, lines, _ = raw(imap, "UID THREAD REFERENCES UTF-8 SUBJECT invoice")
    assert lines == ["* THREAD (1 2)"], lines
    st, _, _ = raw(imap, "THREAD FOO UTF-8 ALL")
    assert st == "BAD"

"""Data-driven IMAP transcripts: client lines and the exact server responses expected, for the
fiddly parts of the protocol (ENVELOPE, BODYSTRUCTURE, sections and partial fetches, BINARY,
SEARCH keys, ESEARCH / SEARCHRES, SORT, THREAD).

The transcripts run against one fresh instance whose user alice holds, in INBOX, the
hand-made messages of imap_transcripts/messages/*.eml, imported in file-name order (so the
message "NN-name.eml" is sequence number and UID NN). Expected responses were derived from
the RFCs (3501, 9051, 3516, 4731, 5182, 5256, 7162) by hand, not recorded from the server.

Format of imap_transcripts/*.txt, one item per line:

    # text            a comment (ignored), as are empty lines
    #! xfail: reason  the transcript is expected to fail (a known server bug): strict xfail
    C: text           the client sends text + CRLF
    C+ escaped        the client sends exactly these bytes (no CRLF added); escapes as for L:
    S: text           the next server line, without its CRLF, is exactly text
    S~ regex          the next server line, without its CRLF, matches regex (re.fullmatch);
                      for values that vary: UIDVALIDITY, archive times, free response text
    L: escaped        the literal that the previous server line announced at its end ({n} or
                      ~{n}) is exactly these bytes (its length n is checked too); Python
                      escapes: \\r \\n \\t \\xNN \\\\
                      after the literal, the rest of the server's response line is the next
                      S: line (e.g. "S:  BODY[2] {5}" or "S: )")

Each transcript starts on a new TLS connection, after the greeting (which must be "* OK ...");
it logs in and selects itself. When it ends without LOGOUT, the runner sends "ZZZZ NOOP" and
the next line must be its tagged OK: no response line may be left unaccounted for."""
import codecs
import re
from pathlib import Path

import pytest

from arcad import Arcad, make_instance

HERE = Path(__file__).resolve().parent / "imap_transcripts"
MESSAGES = HERE / "messages"
LITERAL_AT_END = re.compile(rb"(~?)\{(\d+)\}$")


def unescape(text):
    return codecs.escape_decode(text.encode("latin-1"))[0]


class Step:
    def __init__(self, lineno, kind, arg):
        self.lineno, self.kind, self.arg = lineno, kind, arg


def parse_transcript(path):
    """[Step], xfail reason or None."""
    steps, xfail = [], None
    for no, raw in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        line = raw.rstrip("\r")
        if line.startswith("#! xfail:"):
            xfail = line.split(":", 1)[1].strip()
            continue
        if not line.strip() or line.startswith("#"):
            continue
        kind, arg = line[:2], line[3:]
        if kind not in ("C:", "C+", "S:", "S~", "L:") or (len(line) > 2 and line[2] != " "):
            raise ValueError("%s:%d: cannot parse %r" % (path.name, no, line))
        steps.append(Step(no, kind, arg))
    return steps, xfail


def transcript_params():
    out = []
    for p in sorted(HERE.glob("*.txt")):
        _steps, xfail = parse_transcript(p)
        marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
        out.append(pytest.param(p, id=p.stem, marks=marks))
    return out


@pytest.fixture(scope="module")
def transcript_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("imap-transcripts")
    arca = make_instance(tmp)
    # a directory is imported in file-name order (checked below)
    arca.import_(MESSAGES, "alice", "INBOX")
    d = Arcad(arca, tmp).start()
    yield d
    d.stop()


class Runner:
    def __init__(self, conn, path):
        self.conn = conn
        self.path = path
        self.seen = []  # what the server said so far (for failure messages)
        self.literal = None  # (n, is_literal8) announced by the last line

    def fail(self, step, what):
        ctx = "\n".join("  " + repr(x) for x in self.seen[-12:])
        pytest.fail("%s:%d: %s\nlast server lines:\n%s" % (self.path.name, step.lineno, what, ctx),
                    pytrace=False)

    def next_line(self, step):
        try:
            line = self.conn.read_line()
        except (EOFError, OSError) as e:
            self.fail(step, "expected a server line, connection says %r" % e)
        self.seen.append(line)
        if not line.endswith(b"\r\n"):
            self.fail(step, "server line does not end with CRLF: %r" % line)
        body = line[:-2]
        m = LITERAL_AT_END.search(body)
        self.literal = (int(m.group(2)), m.group(1) == b"~") if m else None
        return body

    def run(self, steps):
        greeting = self.conn.read_line()
        assert greeting.startswith(b"* OK "), "greeting %r" % greeting
        last_client = ""
        for st in steps:
            if st.kind in ("C:", "C+") and self.literal is not None:
                self.fail(st, "the server announced a literal of %d bytes that the transcript "
                              "does not check (L: line missing)" % self.literal[0])
            if st.kind == "C:":
                self.conn.send(st.arg.encode("utf-8") + b"\r\n")
                last_client = st.arg
            elif st.kind == "C+":
                self.conn.send(unescape(st.arg))
                last_client = ""
            elif st.kind == "L:":
                if self.literal is None:
                    self.fail(st, "expected a literal, but the last server line announced none")
                n, _lit8 = self.literal
                want = unescape(st.arg)
                try:
                    got = self.conn.read_exact(n)
                except (EOFError, OSError) as e:
                    self.fail(st, "literal of %d bytes not received: %r" % (n, e))
                self.seen.append(got)
                self.literal = None
                if got != want:
                    self.fail(st, "literal differs:\n  expected (%d bytes) %r\n  got      (%d bytes) %r"
                              % (len(want), want, len(got), got))
            else:
                if self.literal is not None:
                    self.fail(st, "the server announced a literal of %d bytes that the transcript "
                                  "does not check (L: line missing)" % self.literal[0])
                got = self.next_line(st).decode("latin-1")
                if st.kind == "S:" and got != st.arg:
                    self.fail(st, "server line differs:\n  expected %r\n  got      %r" % (st.arg, got))
                if st.kind == "S~" and not re.fullmatch(st.arg, got):
                    self.fail(st, "server line does not match:\n  regex %r\n  got   %r" % (st.arg, got))
        if self.literal is not None:
            self.fail(steps[-1], "a literal announced at the end is not checked")
        if not re.match(r"^\S+ LOGOUT$", last_client, re.I):
            self.conn.send(b"ZZZZ NOOP\r\n")
            line = self.conn.read_line()
            if not line.startswith(b"ZZZZ OK"):
                self.seen.append(line)
                self.fail(steps[-1], "after the transcript the server sent more than expected: %r"
                          % line)


@pytest.mark.parametrize("path", transcript_params())
def test_transcript(transcript_server, path):
    steps, _xfail = parse_transcript(path)
    conn = transcript_server.raw()
    conn.sock.settimeout(30)
    try:
        Runner(conn, path).run(steps)
    finally:
        conn.close()


def test_transcript_messages_are_in_file_order(transcript_server):
    """The premise of every transcript: message NN-*.eml is sequence number / UID NN."""
    files = sorted(MESSAGES.glob("*.eml"))
    c = transcript_server.login("alice", "alice-pw-1")
    try:
        typ, data = c.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == len(files), data
        typ, data = c.fetch("1:*", "(UID RFC822.SIZE)")
        got = [tuple(int(x) for x in re.findall(rb"(?:UID|SIZE) (\d+)", d)) for d in data]
        want = [(i, f.stat().st_size) for i, f in enumerate(files, 1)]
        assert got == want, "(UID, size) per message: got %r, files say %r" % (got, want)
    finally:
        c.logout()

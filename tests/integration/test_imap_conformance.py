"""IMAP conformance of `arcad instance` (RFC 3501 / RFC 9051 and the extensions it advertises),
driven by Python's imaplib and, where exact bytes matter, by RawImap.

Areas: greeting and capabilities; login (LOGIN, AUTHENTICATE PLAIN, SASL-IR, STARTTLS,
LOGINDISABLED, limits); mailboxes (NAMESPACE, LIST and its extensions, LSUB, STATUS, SELECT /
EXAMINE, CLOSE / UNSELECT); FETCH; SEARCH / SORT / THREAD / ESEARCH / SEARCHRES; CONDSTORE;
ENABLE / IMAP4rev2; IDLE; COMPRESS; the read-only archive (write commands get NO [NOPERM]);
limits and timeouts; malformed input and commands in the wrong state (each answered BAD or NO,
the connection still answering NOOP afterwards).

The byte-exact responses for BODYSTRUCTURE, ENVELOPE, sections, BINARY, SEARCH keys, ESEARCH,
SORT and THREAD are in the data-driven transcripts (test_imap_transcripts.py).

Most tests share the session's `imap_server` (the corpus in alice's 5 folders; read-only).
Tests that need daemon options (IDLE polling, connection limits, timeouts, restarts) or
changes (imports, grants) start their own daemon over `small`, a small instance of this module."""
import base64
import email.utils
import imaplib
import json
import re
import socket
import time
import urllib.request
import zlib
from pathlib import Path

import pytest

from arcad import FOLDERS, Arcad, RawImap, imap_server, make_instance  # noqa: F401 (fixture)
from conftest import REPO, make_msg

# Every capability the server may advertise -> the test that covers it (checked below).
CAPABILITY_TESTS = {
    "IMAP4rev1": "test_greeting_and_capability",
    "IMAP4rev2": "test_enable_imap4rev2",
    "LITERAL+": "test_literal_plus",
    "LITERAL-": "test_literal_plus",
    "SASL-IR": "test_authenticate_plain_initial_response",
    "AUTH=PLAIN": "test_authenticate_plain_continuation",
    "ID": "test_id",
    "ENABLE": "test_enable_condstore_and_unknown",
    "IDLE": "test_idle_sees_arcactl_import",
    "STARTTLS": "test_starttls_with_imaplib",
    "LOGINDISABLED": "test_logindisabled_on_plain_port",
    "NAMESPACE": "test_namespace",
    "UNSELECT": "test_unselect_and_close",
    "CHILDREN": "test_list_children",
    "LIST-EXTENDED": "test_list_extended",
    "LIST-STATUS": "test_list_status",
    "SPECIAL-USE": "test_list_special_use",
    "ESEARCH": "test_esearch",
    "SEARCHRES": "test_searchres",
    "SORT": "test_sort",
    "THREAD=REFERENCES": "test_thread",
    "THREAD=ORDEREDSUBJECT": "test_thread",
    "BINARY": "test_binary",
    "CONDSTORE": "test_condstore",
    "COMPRESS=DEFLATE": "test_compress_deflate",
}

# Every command of the server's table (src/imap/cmd_any.c commands[]) -> its test.
COMMAND_TESTS = {
    "APPEND": "test_write_commands_refused_archive_unchanged",
    "AUTHENTICATE": "test_authenticate_plain_initial_response",
    "CAPABILITY": "test_greeting_and_capability",
    "CHECK": "test_noop_and_check",
    "CLOSE": "test_unselect_and_close",
    "COMPRESS": "test_compress_deflate",
    "COPY": "test_write_commands_refused_archive_unchanged",
    "CREATE": "test_write_commands_refused_archive_unchanged",
    "DELETE": "test_write_commands_refused_archive_unchanged",
    "ENABLE": "test_enable_condstore_and_unknown",
    "EXAMINE": "test_select_and_examine_read_only",
    "EXPUNGE": "test_write_commands_refused_archive_unchanged",
    "FETCH": "test_fetch_flags_size_internaldate",
    "ID": "test_id",
    "IDLE": "test_idle_sees_arcactl_import",
    "LIST": "test_list_folders",
    "LOGIN": "test_login",
    "LOGOUT": "test_logout",
    "LSUB": "test_lsub_subscribe_unsubscribe",
    "MOVE": "test_write_commands_refused_archive_unchanged",
    "NAMESPACE": "test_namespace",
    "NOOP": "test_noop_and_check",
    "RENAME": "test_write_commands_refused_archive_unchanged",
    "SEARCH": "test_search_with_imaplib",
    "SELECT": "test_select_and_examine_read_only",
    "SORT": "test_sort",
    "STARTTLS": "test_starttls_with_imaplib",
    "STATUS": "test_status",
    "STORE": "test_write_commands_refused_archive_unchanged",
    "SUBSCRIBE": "test_lsub_subscribe_unsubscribe",
    "THREAD": "test_thread",
    "UNSELECT": "test_unselect_and_close",
    "UNSUBSCRIBE": "test_lsub_subscribe_unsubscribe",
    "UID": "test_uid_commands",
}

PW = {"alice": "alice-pw-1", "bob": "bob-pw-1", "carol": "carol-pw-1", "root": "root-pw-1"}


# ------------------------------------------------------------------ helpers

def lines(resp):
    """RawImap response bytes -> list of text lines (literals stay inside, CRLF removed)."""
    return resp.decode("latin-1").split("\r\n")[:-1]


def tagged(resp):
    return lines(resp)[-1]


def raw_login(server, user="alice", select=None):
    r = server.raw()
    r.sock.settimeout(60)
    greet = r.read_line()
    assert greet.startswith(b"* OK"), greet
    t = tagged(r.cmd("L", "LOGIN %s %s" % (user, PW[user])))
    assert t.startswith("L OK"), "login as %s: %s" % (user, t)
    if select:
        t = tagged(r.cmd("S", 'SELECT "%s"' % select))
        assert t.startswith("S OK"), "SELECT %s: %s" % (select, t)
    return r


def assert_usable(r, tag="ZZ"):
    t = tagged(r.cmd(tag, "NOOP"))
    assert t.startswith(tag + " OK"), "the connection no longer answers NOOP: %r" % t


def expect(r, tag, text, status, code=None):
    """Sends text; the tagged answer must have status (and response code); returns all lines."""
    out = lines(r.cmd(tag, text))
    t = out[-1]
    want = "%s %s " % (tag, status) + ("[%s" % code if code else "")
    assert t.startswith(want), "%s %s: expected %r..., got %r" % (tag, text[:60], want, t)
    return out


def caps_of(text):
    m = re.search(r"CAPABILITY ([^\]\r\n]*)", text)
    assert m, "no CAPABILITY in %r" % text
    return set(m.group(1).split())


def login(server, user="alice"):
    return server.login(user, PW[user])


# ------------------------------------------------------------------ a small instance of our own

class Small:
    """A small instance with alice's folders INBOX (3), Sent (1), Projects/Alpha (2), Spam (1),
    Idle (1), Entwürfe (1); each test starts (and stops) its own daemon over it."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.arca = make_instance(self.tmp)
        n = 0
        for folder, count in (("INBOX", 3), ("Sent", 1), ("Projects/Alpha", 2), ("Spam", 1),
                              ("Idle", 1), ("Entw\u00fcrfe", 1)):
            d = self.tmp / ("src%d" % n)
            d.mkdir()
            for i in range(count):
                n += 1
                (d / ("m%02d.eml" % i)).write_bytes(make_msg(subject="%s message %d" % (folder, i),
                                                             msgid="<small-%d@t>" % n))
            self.arca.import_(d, "alice", folder)
        self.runs = 0

    def start(self, *extra):
        self.runs += 1
        wd = self.tmp / ("run%d" % self.runs)
        wd.mkdir()
        return Arcad(self.arca, wd, extra=["--login-penalty-scale", "1", *extra]).start()

    def import_msg(self, folder, msg):
        d = self.tmp / ("add%d" % time.monotonic_ns())
        d.mkdir()
        (d / "m.eml").write_bytes(msg)
        self.arca.import_(d, "alice", folder)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return Small(tmp_path_factory.mktemp("imap-small"))


@pytest.fixture
def small_server(small):
    d = small.start("--idle-poll", "1")
    d.users = PW
    yield d
    d.stop()


def api(server, user, command, args):
    req = urllib.request.Request("http://127.0.0.1:%d/api/invoke/%s" % (server.http_port, command),
                                 data=json.dumps(args).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Basic " + base64.b64encode(
        ("%s:%s" % (user, PW[user])).encode()).decode())
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
    return json.loads(body) if body else None


# ------------------------------------------------------------------ coverage of the server's tables

def test_every_advertised_capability_has_a_test(imap_server):
    c = login(imap_server)
    try:
        caps = set(c.capabilities)
    finally:
        c.logout()
    r = imap_server.raw()
    pre = caps_of(r.read_line().decode())
    r.close()
    p = imap_server.raw(tls=False)
    plain = caps_of(p.read_line().decode())
    p.close()
    known = {k.upper() for k in CAPABILITY_TESTS}  # imaplib upper-cases capabilities
    missing = sorted(x for x in caps | pre | plain if x.upper() not in known)
    assert not missing, "capabilities advertised without a test in CAPABILITY_TESTS: %s" % missing
    undefined = sorted(t for t in CAPABILITY_TESTS.values() if t not in globals())
    assert not undefined, "CAPABILITY_TESTS names tests that do not exist: %s" % undefined


def test_every_command_of_the_server_table_has_a_test():
    src = (REPO / "src" / "imap" / "cmd_any.c").read_text()
    table = src[src.index("commands[] = {"):]
    table = table[:table.index("};")]
    names = set(re.findall(r'\{"([A-Z]+)",', table))
    assert names, "could not read the command table of cmd_any.c"
    names.add("UID")  # the prefix handled by the dispatcher (imapd.c)
    missing = sorted(names - set(COMMAND_TESTS))
    assert not missing, "commands without a test in COMMAND_TESTS: %s" % missing
    undefined = sorted(t for t in COMMAND_TESTS.values() if t not in globals())
    assert not undefined, "COMMAND_TESTS names tests that do not exist: %s" % undefined


# ------------------------------------------------------------------ greeting, capabilities

def test_greeting_and_capability(imap_server):
    r = imap_server.raw()
    greet = r.read_line().decode()
    assert greet.startswith("* OK [CAPABILITY "), "greeting: %r" % greet
    pre = caps_of(greet)
    for cap in ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "AUTH=PLAIN"):
        assert cap in pre, "%s missing before login on the TLS port: %s" % (cap, sorted(pre))
    assert "STARTTLS" not in pre and "LOGINDISABLED" not in pre, sorted(pre)
    out = expect(r, "a", "CAPABILITY", "OK")
    assert len(out) == 2 and out[0].startswith("* CAPABILITY "), out
    assert caps_of(out[0]) == pre, "CAPABILITY differs from the greeting's: %s" % out
    expect(r, "b", "LOGIN alice %s" % PW["alice"], "OK", "CAPABILITY")
    post = caps_of(lines(r.cmd("c", "CAPABILITY"))[0])
    for cap in ("NAMESPACE", "UNSELECT", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE",
                "ESEARCH", "SEARCHRES", "SORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "BINARY",
                "CONDSTORE", "COMPRESS=DEFLATE", "IMAP4rev1", "IMAP4rev2", "IDLE", "ENABLE", "ID"):
        assert cap in post, "%s missing after login: %s" % (cap, sorted(post))
    assert "AUTH=PLAIN" not in post, "AUTH= after login (RFC 9051 §6.1.1): %s" % sorted(post)
    expect(r, "d", "CAPABILITY extra", "BAD")
    assert_usable(r)
    r.close()


def test_login(imap_server):
    c = imap_server.imaps()
    typ, data = c.login("alice", PW["alice"])
    assert typ == "OK" and b"[CAPABILITY " in data[0], data
    assert c.state == "AUTH"
    c.logout()


def test_login_failures_and_instance_prefix(small):
    d = small.start("--instance-id", "inst1")
    try:
        r = d.raw()
        r.read_line()
        expect(r, "a", "LOGIN alice wrong-password", "NO", "AUTHENTICATIONFAILED")
        expect(r, "b", "LOGIN nosuchuser whatever", "NO", "AUTHENTICATIONFAILED")
        expect(r, "c", "LOGIN alice", "BAD")
        # "instance/user" (as the Client Access Server passes it) for this instance only
        expect(r, "d", "LOGIN other/alice %s" % PW["alice"], "NO", "AUTHENTICATIONFAILED")
        expect(r, "e", "LOGIN inst1/alice %s" % PW["alice"], "OK")
        r.close()
    finally:
        d.stop()


def test_logout(imap_server):
    r = raw_login(imap_server)
    out = lines(r.cmd("z", "LOGOUT"))
    assert out[0].startswith("* BYE"), out
    assert out[-1].startswith("z OK"), out
    with pytest.raises((EOFError, OSError)):
        r.read_line()  # the server closes the connection
    r.close()


def test_authenticate_plain_initial_response(imap_server):
    r = imap_server.raw()
    r.read_line()
    ir = base64.b64encode(b"\0alice\0" + PW["alice"].encode()).decode()
    expect(r, "a", "AUTHENTICATE PLAIN " + ir, "OK", "CAPABILITY")
    expect(r, "b", "AUTHENTICATE PLAIN " + ir, "BAD")  # wrong state
    assert_usable(r)
    r.close()


def test_authenticate_plain_continuation(imap_server):
    c = imap_server.imaps()
    typ, _ = c.authenticate("PLAIN", lambda _chal: b"alice\0alice\0" + PW["alice"].encode())
    assert typ == "OK" and c.state == "AUTH"
    c.logout()
    r = imap_server.raw()
    r.read_line()
    r.send("a AUTHENTICATE PLAIN\r\n")
    assert r.read_line() == b"+ \r\n"
    r.send("*\r\n")  # the client cancels
    assert r.read_line().startswith(b"a BAD"), "cancelled AUTHENTICATE must be BAD"
    expect(r, "b", "AUTHENTICATE PLAIN " + base64.b64encode(b"bob\0alice\0x").decode(), "NO",
           "AUTHORIZATIONFAILED")
    expect(r, "c", "AUTHENTICATE PLAIN !!notbase64!!", "BAD")
    expect(r, "d", "AUTHENTICATE CRAM-MD5", "NO")
    assert_usable(r)
    r.close()


def test_id(imap_server):
    r = imap_server.raw()
    r.read_line()
    out = expect(r, "a", 'ID ("name" "pytest" "version" "1")', "OK")
    assert re.fullmatch(r'\* ID \(("[^"]*" "[^"]*" ?)+\)', out[0]), out
    out = expect(r, "b", "ID NIL", "OK")
    assert out[0].startswith("* ID ("), out
    expect(r, "c", "ID", "BAD")
    expect(r, "d", "ID foo", "BAD")
    assert_usable(r)
    r.close()


# ------------------------------------------------------------------ TLS, plain port

def test_logindisabled_on_plain_port(imap_server):
    p = imap_server.raw(tls=False)
    caps = caps_of(p.read_line().decode())
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps, sorted(caps)
    assert "AUTH=PLAIN" not in caps, sorted(caps)
    expect(p, "a", "LOGIN alice %s" % PW["alice"], "NO", "PRIVACYREQUIRED")
    ir = base64.b64encode(b"\0alice\0" + PW["alice"].encode()).decode()
    expect(p, "b", "AUTHENTICATE PLAIN " + ir, "NO", "PRIVACYREQUIRED")
    assert_usable(p)
    p.close()


def test_starttls_with_imaplib(imap_server):
    c = imap_server.imap_plain()
    assert "STARTTLS" in c.capabilities
    typ, _ = c.starttls(ssl_context=imap_server.ssl_context())
    assert typ == "OK"
    caps = set(c.capabilities)  # imaplib asks again after STARTTLS
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps, sorted(caps)
    typ, _ = c.login("alice", PW["alice"])
    assert typ == "OK"
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK" and int(data[0]) == len(imap_server.expect["INBOX"])
    c.logout()


def test_starttls_discards_pipelined_plaintext(imap_server):
    s = socket.create_connection(("127.0.0.1", imap_server.imap_port), timeout=60)
    r = RawImap(s)
    r.read_line()
    # injected after STARTTLS in the same packet: must not run inside the TLS session
    r.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
    assert r.read_line().startswith(b"a OK"), "STARTTLS refused"
    assert r.buf == b"", "the server answered bytes sent before TLS: %r" % r.buf
    t = imap_server.ssl_context().wrap_socket(s, server_hostname="localhost")
    r2 = RawImap(t)
    out = lines(r2.cmd("c", "NOOP"))
    assert out == [out[-1]] and out[-1].startswith("c OK"), (
        "the pipelined command was answered after the TLS handshake: %r" % out)
    expect(r2, "d", "STARTTLS", "BAD")  # already active
    r2.close()


# ------------------------------------------------------------------ literals

def test_literal_plus(imap_server):
    r = imap_server.raw()
    r.read_line()
    # LITERAL+ (and LITERAL-: a non-synchronizing literal of at most 4096 octets)
    pw = PW["alice"].encode()
    r.send(b"a LOGIN {5+}\r\nalice {%d+}\r\n%s\r\n" % (len(pw), pw))
    t = r.read_response("a")
    assert not t.startswith(b"+"), "no continuation for a non-synchronizing literal"
    assert tagged(t).startswith("a OK"), t
    # a synchronizing literal gets "+" first
    r.send(b"b SELECT {5}\r\n")
    assert r.read_line().startswith(b"+ "), "no continuation request for {5}"
    r.send(b"INBOX\r\n")
    assert tagged(r.read_response("b")).startswith("b OK")
    # a literal in FETCH header-list
    r.send(b"c FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7+}\r\nSubject)])\r\n")
    out = r.read_response("c")
    assert tagged(out).startswith("c OK") and b"BODY[HEADER.FIELDS (" in out, out[:300]
    assert_usable(r)
    r.close()


# ------------------------------------------------------------------ mailboxes

def list_names(out, kind="LIST"):
    res = {}
    for ln in out:
        m = re.match(r'^\* %s \(([^)]*)\) "/" (.*)$' % kind, ln)
        if m:
            res[m.group(2).strip('"')] = set(m.group(1).split())
    return res


def test_list_folders(imap_server):
    r = raw_login(imap_server)
    names = list_names(expect(r, "a", 'LIST "" "*"', "OK"))
    for f in FOLDERS + ["Projects", "Old"]:
        assert f in names, "%s missing from LIST: %s" % (f, sorted(names))
    top = list_names(expect(r, "b", 'LIST "" "%"', "OK"))
    assert set(top) == {"INBOX", "Sent", "Projects", "Spam", "Old"}, sorted(top)
    sub = list_names(expect(r, "c", 'LIST "Projects/" "%"', "OK"))
    assert set(sub) == {"Projects/Alpha"}, sub
    inbox = list_names(expect(r, "d", 'LIST "" "inbox"', "OK"))
    assert set(inbox) == {"INBOX"}, "INBOX is case-insensitive: %s" % inbox
    out = expect(r, "e", 'LIST "" ""', "OK")
    assert out[0] == '* LIST (\\Noselect) "/" ""', out
    assert list_names(expect(r, "f", 'LIST "" "nosuch*"', "OK")) == {}
    expect(r, "g", "LIST", "BAD")
    r.close()


def test_list_children(imap_server):
    r = raw_login(imap_server)
    names = list_names(expect(r, "a", 'LIST "" "*"', "OK"))
    assert "\\HasChildren" in names["Projects"] and "\\HasChildren" in names["Old"], names
    for f in FOLDERS:
        assert "\\HasNoChildren" in names[f], "%s: %s" % (f, names[f])
    r.close()


def test_list_special_use(imap_server):
    r = raw_login(imap_server)
    names = list_names(expect(r, "a", 'LIST "" "*"', "OK"))
    assert "\\Sent" in names["Sent"] and "\\Junk" in names["Spam"], names
    only = list_names(expect(r, "b", 'LIST (SPECIAL-USE) "" "*"', "OK"))
    assert set(only) == {"Sent", "Spam"}, only
    ret = list_names(expect(r, "c", 'LIST "" "*" RETURN (SPECIAL-USE)', "OK"))
    assert "\\Sent" in ret["Sent"] and not ret["INBOX"] & {"\\Sent", "\\Junk"}, ret
    r.close()


def test_list_extended(imap_server):
    r = raw_login(imap_server)
    names = list_names(expect(r, "a", 'LIST (SUBSCRIBED) "" "*"', "OK"))
    for f in FOLDERS:
        assert "\\Subscribed" in names[f], "%s: %s" % (f, names[f])
    multi = list_names(expect(r, "b", 'LIST "" ("INBOX" "Sp%")', "OK"))
    assert set(multi) == {"INBOX", "Spam"}, multi
    rec = list_names(expect(r, "c", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', "OK"))
    assert set(rec) == {"INBOX", "Sent", "Projects", "Spam", "Old"}, rec
    ch = list_names(expect(r, "d", 'LIST "" "%" RETURN (CHILDREN SUBSCRIBED)', "OK"))
    assert "\\HasChildren" in ch["Projects"] and "\\Subscribed" in ch["INBOX"], ch
    expect(r, "e", 'LIST (NOSUCHOPTION) "" "*"', "BAD")
    expect(r, "f", 'LIST "" "*" RETURN (NOSUCHOPTION)', "BAD")
    assert_usable(r)
    r.close()


def test_list_status(imap_server):
    r = raw_login(imap_server)
    out = expect(r, "a", 'LIST "" "*" RETURN (STATUS (MESSAGES UIDVALIDITY))', "OK")
    status = {}
    for ln in out:
        m = re.match(r'^\* STATUS "?([^"]*?)"? \(MESSAGES (\d+) UIDVALIDITY (\d+)\)$', ln)
        if m:
            status[m.group(1)] = int(m.group(2))
    for f in FOLDERS:
        assert status.get(f) == len(imap_server.expect[f]), "%s: STATUS %r, archived %d" % (
            f, status.get(f), len(imap_server.expect[f]))
    r.close()


def test_lsub_subscribe_unsubscribe(imap_server):
    r = raw_login(imap_server)
    subs = list_names(expect(r, "a", 'LSUB "" "*"', "OK"), "LSUB")
    for f in FOLDERS:
        assert f in subs, "%s not subscribed: %s" % (f, sorted(subs))
    expect(r, "b", "SUBSCRIBE Sent", "OK")
    expect(r, "c", "UNSUBSCRIBE Sent", "NO")  # every archive folder stays subscribed
    expect(r, "d", "SUBSCRIBE", "BAD")
    assert "Sent" in list_names(expect(r, "e", 'LSUB "" "*"', "OK"), "LSUB")
    r.close()


def test_namespace(imap_server):
    c = login(imap_server)
    typ, data = c.namespace()
    assert typ == "OK"
    assert data[0] == b'(("" "/")) (("Other Users/" "/")) NIL', data
    c.logout()


def test_other_users_namespace(small):
    d = small.start()
    try:
        api(d, "root", "SetUserPrivilegesOnFolder",
            {"userName": "carol", "folder": "alice/Projects", "privileges": "read"})
        r = raw_login(d, "carol")
        names = list_names(expect(r, "a", 'LIST "" "*"', "OK"))
        assert "Other Users/alice/Projects/Alpha" in names, sorted(names)
        assert not any(n.startswith("Other Users/alice/") and "Projects" not in n for n in names), (
            "carol sees more than the granted folder: %s" % sorted(names))
        for parent in ("Other Users", "Other Users/alice"):
            assert "\\Noselect" in names[parent] and "\\HasChildren" in names[parent], names
            expect(r, "a1", '%s "%s"' % ("SELECT", parent), "NO")
            expect(r, "a2", 'STATUS "%s" (MESSAGES)' % parent, "NO")
        ns = list_names(expect(r, "a3", 'LIST "Other Users/" "%"', "OK"))
        assert set(ns) == {"Other Users/alice"}, ns
        out = expect(r, "b", 'SELECT "Other Users/alice/Projects/Alpha"', "OK", "READ-ONLY")
        assert "* 2 EXISTS" in out, out
        out = expect(r, "c", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject)])", "OK")
        assert sum("Projects/Alpha message" in ln for ln in out) == 2, out
        expect(r, "d", 'SELECT "Other Users/alice/Sent"', "NO", "NONEXISTENT")
        r.close()
        b = raw_login(d, "bob")
        names = list_names(expect(b, "a", 'LIST "" "*"', "OK"))
        assert not any(n.startswith("Other Users") for n in names), sorted(names)
        b.close()
    finally:
        d.stop()


def test_mailbox_names_modified_utf7_and_utf8(small):
    d = small.start()
    try:
        r = raw_login(d)
        names = list_names(expect(r, "a", 'LIST "" "Entw*"', "OK"))
        assert set(names) == {"Entw&APw-rfe"}, "modified UTF-7 (RFC 3501 §5.1.3): %s" % names
        expect(r, "b", 'EXAMINE "Entw&APw-rfe"', "OK")
        expect(r, "c", 'EXAMINE "Entw&APw"', "BAD")  # broken modified UTF-7
        expect(r, "d", "ENABLE IMAP4rev2", "OK")
        r.send('e LIST "" "Entw*"\r\n'.encode())
        out = r.read_response("e").decode("utf-8").split("\r\n")
        assert any("Entw\u00fcrfe" in ln for ln in out), "UTF-8 names after ENABLE IMAP4rev2: %s" % out
        r.close()
    finally:
        d.stop()


def test_status(imap_server):
    c = login(imap_server)
    typ, data = c.status("Sent", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
    assert typ == "OK", data
    m = re.match(rb'"?Sent"? \(MESSAGES (\d+) UIDNEXT (\d+) UIDVALIDITY (\d+) UNSEEN 0 RECENT 0\)', data[0])
    assert m, data
    assert int(m.group(1)) == len(imap_server.expect["Sent"])
    typ, data = c.status("NoSuchFolder", "(MESSAGES)")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0], data
    with pytest.raises(imaplib.IMAP4.error):
        c.status("Sent", "(NOSUCHITEM)")
    c.logout()


def test_status_size_and_deleted(small):
    d = small.start()
    try:
        r = raw_login(d)
        out = expect(r, "a", "STATUS INBOX (MESSAGES SIZE DELETED)", "OK")
        size = sum(len(make_msg(subject="INBOX message %d" % i, msgid="<small-%d@t>" % (i + 1)))
                   for i in range(3))
        assert out[0] == "* STATUS INBOX (MESSAGES 3 DELETED 0 SIZE %d)" % size, out
        r.close()
    finally:
        d.stop()


def test_select_and_examine_read_only(imap_server):
    r = raw_login(imap_server)
    for cmd in ("SELECT", "EXAMINE"):
        out = expect(r, "a", '%s "Old/2002"' % cmd, "OK", "READ-ONLY")
        assert "* %d EXISTS" % len(imap_server.expect["Old/2002"]) in out, out
        assert "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in out, out
        assert any(re.match(r"\* OK \[UIDVALIDITY [1-9]\d*\]", ln) for ln in out), out
        assert any(re.match(r"\* OK \[UIDNEXT [1-9]\d*\]", ln) for ln in out), out
        assert any(ln.startswith("* OK [PERMANENTFLAGS ()]") for ln in out), out
    out = expect(r, "b", "SELECT NoSuchFolder", "NO", "NONEXISTENT")
    # a failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1)
    expect(r, "c", "FETCH 1 UID", "BAD")
    expect(r, "e", "SELECT INBOX (NOSUCHPARAM)", "BAD")
    assert_usable(r)
    r.close()


def test_unselect_and_close(imap_server):
    r = raw_login(imap_server, select="INBOX")
    expect(r, "a", "UNSELECT", "OK")
    expect(r, "b", "FETCH 1 UID", "BAD")
    expect(r, "c", "UNSELECT", "BAD")
    expect(r, "d", "EXAMINE INBOX", "OK")
    expect(r, "e", "CLOSE", "OK")
    expect(r, "f", "CLOSE", "BAD")
    r.close()
    c = login(imap_server)
    c.select("Sent", readonly=True)
    assert c.unselect()[0] == "OK"
    c.select("Sent", readonly=True)  # imaplib refuses a plain select() of a read-only mailbox
    assert c.close()[0] == "OK"
    c.logout()


def test_uidvalidity_and_uids(imap_server):
    c = login(imap_server)
    for f in FOLDERS:
        typ, data = c.status('"%s"' % f, "(UIDVALIDITY UIDNEXT)")
        st = re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1)
        c.select('"%s"' % f, readonly=True)
        sel = c.response("UIDVALIDITY")[1][0]
        assert sel == st, "%s: SELECT says UIDVALIDITY %r, STATUS %r" % (f, sel, st)
        typ, data = c.fetch("1:*", "(UID)")
        uids = [int(re.search(rb"UID (\d+)", d).group(1)) for d in data]
        assert uids == sorted(set(uids)), "%s: UIDs do not ascend" % f
        uidnext = int(re.search(rb"UIDNEXT (\d+)", c.status('"%s"' % f, "(UIDNEXT)")[1][0]).group(1))
        assert uids[-1] < uidnext, "%s: last UID %d, UIDNEXT %d" % (f, uids[-1], uidnext)
    c.logout()


def test_uidvalidity_same_after_restart(small):
    def snapshot(d):
        r = raw_login(d)
        out = expect(r, "a", 'LIST "" "*" RETURN (STATUS (UIDVALIDITY UIDNEXT MESSAGES))', "OK")
        uids = lines(r.cmd("b", "EXAMINE INBOX"))
        uids = lines(r.cmd("c", "UID SEARCH ALL"))
        r.close()
        return sorted(ln for ln in out if ln.startswith("* STATUS")), uids[0]
    d = small.start()
    try:
        before = snapshot(d)
    finally:
        d.stop()
    d = small.start()
    try:
        after = snapshot(d)
    finally:
        d.stop()
    assert before == after, "UIDVALIDITY/UIDs changed over a restart:\n%s\n%s" % (before, after)


# ------------------------------------------------------------------ FETCH

def test_fetch_flags_size_internaldate(imap_server):
    c = login(imap_server)
    c.select("Spam", readonly=True)
    typ, data = c.fetch("1:*", "(FLAGS)")
    assert typ == "OK"
    bad = [d for d in data if not re.fullmatch(rb"\d+ \(FLAGS \(\\Seen\)\)", d)]
    assert not bad, "FLAGS must always be (\\Seen): %r" % bad[:3]
    typ, data = c.fetch("1:40", "(RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (DATE)] BODY.PEEK[])")
    assert typ == "OK"
    msgs = [d for d in data if isinstance(d, tuple)]
    i = 0
    while i < len(msgs):
        head, hdr = msgs[i]
        _head2, body = msgs[i + 1]
        i += 2
        size = int(re.search(rb"RFC822.SIZE (\d+)", head).group(1))
        assert size == len(body), "RFC822.SIZE %d but BODY[] has %d octets" % (size, len(body))
        idate = re.search(rb'INTERNALDATE "([^"]+)"', head).group(1).decode()
        assert re.fullmatch(r"[ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}", idate), idate
        got = imaplib.Internaldate2tuple(b'INTERNALDATE "%s"' % idate.encode())
        m = re.search(rb"(?i)^Date:[ \t]*(.*?)\r?$", hdr, re.M)
        parsed = email.utils.parsedate_tz(m.group(1).decode("latin-1")) if m else None
        if parsed is not None and parsed[9] is not None and 1970 < parsed[0] < 2100:
            want = time.localtime(email.utils.mktime_tz(parsed))
            assert time.mktime(got) == time.mktime(want), (
                "INTERNALDATE %s is not the Date field %r" % (idate, m.group(1)))
    c.logout()


def test_fetch_macros_and_items(imap_server):
    r = raw_login(imap_server, select="INBOX")
    out = expect(r, "a", "FETCH 1 FAST", "OK")
    assert re.fullmatch(r'\* 1 FETCH \(FLAGS \(\\Seen\) INTERNALDATE "[^"]+" RFC822.SIZE \d+\)', out[0]), out
    out = expect(r, "b", "FETCH 1 ALL", "OK")
    assert " ENVELOPE (" in out[0] and "RFC822.SIZE" in out[0], out[0][:200]
    out = expect(r, "c", "FETCH 1 FULL", "OK")
    assert " BODY (" in out[0] and " ENVELOPE (" in out[0], out[0][:200]
    out = expect(r, "d", "UID FETCH 1:* (FLAGS)", "OK")
    assert all("UID " in ln for ln in out[:-1]), "UID FETCH must include UID: %r" % out[:2]
    # BODY[] in a read-only mailbox: no FLAGS change is reported
    out = r.cmd("e", "FETCH 2 BODY[]")
    assert b"FLAGS" not in out and tagged(out).startswith("e OK")
    expect(r, "f", "FETCH 1 (NOSUCHITEM)", "BAD")
    expect(r, "g", "FETCH 1 ()", "BAD")
    expect(r, "h", "FETCH 1 BODY[MIME]", "BAD")
    assert_usable(r)
    r.close()


def test_fetch_envelope_and_bodystructure_of_every_message_parse(imap_server):
    """Not the values (the transcripts check those): that every corpus message of a folder
    gets a well-formed answer (balanced parentheses, literals of the announced size)."""
    r = raw_login(imap_server, select="Old/2002")
    out = r.cmd("a", "FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert tagged(out).startswith("a OK"), tagged(out)
    n = 0
    body = out[:out.rindex(b"\r\na OK")]
    for ln in body.split(b"\r\n* "):
        depth, in_q, esc = 0, False, False
        for ch in ln[ln.index(b"("):]:
            ch = bytes([ch])
            if in_q:
                if esc:
                    esc = False
                elif ch == b"\\":
                    esc = True
                elif ch == b'"':
                    in_q = False
                continue
            if ch == b'"':
                in_q = True
            elif ch == b"(":
                depth += 1
            elif ch == b")":
                depth -= 1
        n += 1
        assert depth == 0, "unbalanced FETCH response: %r" % ln[:300]
    assert n == len(imap_server.expect["Old/2002"])
    r.close()


def test_binary(imap_server):
    r = raw_login(imap_server, select="INBOX")
    out = r.cmd("a", "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BODY.PEEK[1])")
    assert tagged(out).startswith("a OK"), tagged(out)
    assert b"BINARY[1] " in out and re.search(rb"BINARY.SIZE\[1\] \d+", out), out[:300]
    out = lines(r.cmd("b", "FETCH 1 BINARY[1.MIME]"))
    assert out[-1].startswith("b BAD"), out
    assert_usable(r)
    r.close()


# ------------------------------------------------------------------ SEARCH, SORT, THREAD

def test_search_with_imaplib(imap_server):
    c = login(imap_server)
    typ, data = c.select("INBOX", readonly=True)
    n = int(data[0])
    typ, data = c.search(None, "ALL")
    assert typ == "OK" and len(data[0].split()) == n
    typ, data = c.search(None, "NEW")
    assert data == [b""], data
    typ, data = c.uid("SEARCH", "UID", "1:*")
    assert len(data[0].split()) == n
    typ, data = c.search("UTF-8", "SUBJECT", "razor")
    typ2, data2 = c.search(None, "NOT", "NOT", "SUBJECT", "razor")
    assert data == data2 and data[0], (data, data2)
    c.logout()


def test_esearch(imap_server):
    r = raw_login(imap_server, select="INBOX")
    out = expect(r, "a", "SEARCH RETURN (MIN MAX COUNT) ALL", "OK")
    n = len(imap_server.expect["INBOX"])
    assert out[0] == '* ESEARCH (TAG "a") MIN 1 MAX %d COUNT %d' % (n, n), out
    out = expect(r, "b", "UID SEARCH RETURN (COUNT) ALL", "OK")
    assert out[0] == '* ESEARCH (TAG "b") UID COUNT %d' % n, out
    expect(r, "c", "SEARCH RETURN (NOSUCH) ALL", "BAD")
    r.close()


def test_searchres(imap_server):
    r = raw_login(imap_server, select="INBOX")
    out = expect(r, "a", "SEARCH RETURN (SAVE) 2:4", "OK")
    assert len(out) == 1, "RETURN (SAVE) alone gives no untagged answer: %r" % out
    out = expect(r, "b", "FETCH $ (UID)", "OK")
    assert [ln.split()[1] for ln in out[:-1]] == ["2", "3", "4"], out
    r.close()


def test_sort(imap_server):
    c = login(imap_server)
    c.select("Sent", readonly=True)
    typ, data = c.sort("(SIZE)", "UTF-8", "ALL")
    assert typ == "OK"
    order = [int(x) for x in data[0].split()]
    typ, sz = c.fetch("1:*", "(RFC822.SIZE)")
    sizes = {int(d.split()[0]): int(re.search(rb"SIZE (\d+)", d).group(1)) for d in sz}
    assert sorted(order) == sorted(sizes), "SORT must list every message once"
    assert [sizes[i] for i in order] == sorted(sizes.values()), "SORT (SIZE) not ascending"
    typ, data = c.uid("SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL")
    assert typ == "OK" and len(data[0].split()) == len(sizes)
    c.logout()


def test_thread(imap_server):
    c = login(imap_server)
    c.select("INBOX", readonly=True)
    for alg in ("REFERENCES", "ORDEREDSUBJECT"):
        typ, data = c.thread(alg, "UTF-8", "ALL")
        assert typ == "OK", data
        nums = [int(x) for x in re.findall(rb"\d+", data[0])]
        assert sorted(nums) == list(range(1, len(imap_server.expect["INBOX"]) + 1)), (
            "THREAD %s must list every message once" % alg)
    typ, data = c.uid("THREAD", "REFERENCES", "UTF-8", "1:5")
    assert typ == "OK"
    c.logout()


# ------------------------------------------------------------------ CONDSTORE, ENABLE, IMAP4rev2

def test_condstore(imap_server):
    r = raw_login(imap_server)
    out = expect(r, "a", "SELECT Spam (CONDSTORE)", "OK")
    hms = [int(m.group(1)) for ln in out for m in [re.match(r"\* OK \[HIGHESTMODSEQ (\d+)\]", ln)] if m]
    assert hms, "SELECT (CONDSTORE) must give HIGHESTMODSEQ: %r" % out
    out = expect(r, "b", "FETCH 1 (MODSEQ)", "OK")
    assert re.fullmatch(r"\* 1 FETCH \(MODSEQ \(\d+\)\)", out[0]), out
    out = expect(r, "c", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % (hms[0] - 1), "OK")
    assert len(out) == 2, "CHANGEDSINCE highest-1 must give exactly the last message: %r" % out
    assert re.search(r"MODSEQ \(%d\)" % hms[0], out[0]) and "UID " in out[0], (
        "CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1): %r" % out[0])
    out = expect(r, "d", "STATUS Sent (HIGHESTMODSEQ)", "OK")
    assert re.fullmatch(r"\* STATUS Sent \(HIGHESTMODSEQ \d+\)", out[0]), out
    out = expect(r, "e", "SEARCH MODSEQ %d" % hms[0], "OK")
    assert out[0] == "* SEARCH %s (MODSEQ %d)" % (out[0].split()[2], hms[0]), out
    expect(r, "f", "FETCH 1 (FLAGS) (NOSUCHMODIFIER 1)", "BAD")
    r.close()


def test_enable_condstore_and_unknown(imap_server):
    r = imap_server.raw()
    r.read_line()
    expect(r, "a", "ENABLE CONDSTORE", "BAD")  # before login
    expect(r, "b", "LOGIN alice %s" % PW["alice"], "OK")
    out = expect(r, "c", "ENABLE CONDSTORE NOSUCHEXTENSION", "OK")
    assert out[0] == "* ENABLED CONDSTORE", out
    out = expect(r, "d", "EXAMINE INBOX", "OK")
    assert any(ln.startswith("* OK [HIGHESTMODSEQ ") for ln in out), out
    expect(r, "e", "ENABLE", "BAD")
    r.close()


def test_enable_imap4rev2(imap_server):
    r = raw_login(imap_server)
    out = expect(r, "a", "ENABLE IMAP4rev2", "OK")
    assert out[0] == "* ENABLED IMAP4rev2", out
    out = expect(r, "b", "EXAMINE INBOX", "OK")
    assert not any(ln.endswith(" RECENT") for ln in out), "no RECENT in IMAP4rev2: %r" % out
    assert '* LIST () "/" INBOX' in out, out
    out = expect(r, "c", "SEARCH 1:3", "OK")
    assert out[0] == '* ESEARCH (TAG "c") ALL 1:3', out
    r.close()


# ------------------------------------------------------------------ NOOP, CHECK, IDLE

def test_noop_and_check(imap_server):
    r = imap_server.raw()
    r.read_line()
    expect(r, "a", "NOOP", "OK")
    expect(r, "b", "CHECK", "BAD")  # selected state only
    expect(r, "c", "LOGIN alice %s" % PW["alice"], "OK")
    expect(r, "d", "NOOP", "OK")
    expect(r, "e", "SELECT INBOX", "OK")
    out = expect(r, "f", "NOOP", "OK")
    assert len(out) == 1, "nothing new in the archive: %r" % out
    out = expect(r, "g", "CHECK", "OK")
    assert len(out) == 1, "nothing new in the archive: %r" % out
    expect(r, "h", "NOOP now", "BAD")
    r.close()


def idle_until_exists(r, tag, want):
    """In IDLE: reads untagged lines until '* want EXISTS' (blocking, bounded by the socket
    timeout); returns the lines seen."""
    seen = []
    while True:
        ln = r.read_line().decode().rstrip("\r\n")
        seen.append(ln)
        if ln == "* %d EXISTS" % want:
            return seen
        assert ln.startswith("* "), "unexpected line in IDLE: %r (seen %r)" % (ln, seen)


def test_idle_sees_arcactl_import(small):
    d = small.start("--idle-poll", "1")
    try:
        r = raw_login(d, select="Idle")
        out = expect(r, "a", "STATUS Idle (MESSAGES)", "OK")
        n = int(re.search(r"MESSAGES (\d+)", out[0]).group(1))
        r.send("b IDLE\r\n")
        assert r.read_line().startswith(b"+ "), "IDLE must answer with a continuation"
        small.import_msg("Idle", make_msg(subject="arrived during IDLE", msgid="<idle-1@t>"))
        idle_until_exists(r, "b", n + 1)
        r.send("DONE\r\n")
        assert r.read_line().startswith(b"b OK"), "DONE must end IDLE with OK"
        out = expect(r, "c", "FETCH %d BODY.PEEK[HEADER.FIELDS (Subject)]" % (n + 1), "OK")
        assert "Subject: arrived during IDLE" in "\n".join(out), out
        # IDLE ended by something else than DONE: BAD, the connection goes on
        r.send("d IDLE\r\n")
        r.read_line()
        r.send("NOTDONE\r\n")
        assert r.read_line().startswith(b"d BAD")
        assert_usable(r)
        r.close()
    finally:
        d.stop()


def test_idle_sees_api_import_at_once(small):
    # no polling within the test's lifetime: only the in-process notification can tell IDLE
    d = small.start("--idle-poll", "3600")
    try:
        r = raw_login(d, select="Idle")
        out = expect(r, "a", "STATUS Idle (MESSAGES)", "OK")
        n = int(re.search(r"MESSAGES (\d+)", out[0]).group(1))
        r.send("b IDLE\r\n")
        assert r.read_line().startswith(b"+ ")
        req = urllib.request.Request("http://127.0.0.1:%d/api/upload" % d.http_port,
                                     data=make_msg(subject="via the API", msgid="<idle-api@t>"),
                                     method="POST")
        req.add_header("Authorization", "Basic " + base64.b64encode(b"alice:alice-pw-1").decode())
        with urllib.request.urlopen(req, timeout=60) as resp:
            upload = json.loads(resp.read())
        upload_id = (upload.get("result") or upload).get("upload")
        assert upload_id, "upload answer without an id: %r" % upload
        api(d, "alice", "Import", {"upload": upload_id, "format": "eml", "folder": "Idle"})
        idle_until_exists(r, "b", n + 1)
        r.send("DONE\r\n")
        assert r.read_line().startswith(b"b OK")
        r.close()
    finally:
        d.stop()


# ------------------------------------------------------------------ COMPRESS=DEFLATE

class Deflated:
    def __init__(self, sock):
        self.sock = sock
        self.c = zlib.compressobj(wbits=-15)
        self.d = zlib.decompressobj(wbits=-15)
        self.buf = b""

    def cmd(self, tag, text):
        self.sock.sendall(self.c.compress(("%s %s\r\n" % (tag, text)).encode()) +
                          self.c.flush(zlib.Z_SYNC_FLUSH))
        while not re.search(rb"(^|\r\n)%s [A-Z]+ [^\r\n]*\r\n" % re.escape(tag.encode()), self.buf):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed: %r" % self.buf[-200:])
            self.buf += self.d.decompress(chunk)
        out, self.buf = self.buf, b""
        return out.decode("latin-1").split("\r\n")[:-1]


def test_compress_deflate(imap_server):
    r = raw_login(imap_server)
    expect(r, "a", "COMPRESS NOSUCH", "NO")
    expect(r, "b", "COMPRESS", "BAD")
    r.send("c COMPRESS DEFLATE\r\n")
    assert r.read_line().startswith(b"c OK"), "COMPRESS DEFLATE refused"
    z = Deflated(r.sock)
    out = z.cmd("d", "CAPABILITY")
    assert out[-1].startswith("d OK"), out
    assert "COMPRESS=DEFLATE" not in caps_of(out[0]), "COMPRESS=DEFLATE still advertised: %s" % out[0]
    out = z.cmd("e", "SELECT INBOX")
    assert out[-1].startswith("e OK") and "* %d EXISTS" % len(imap_server.expect["INBOX"]) in out, out
    out = z.cmd("f", "FETCH 1:20 (BODY.PEEK[HEADER])")
    assert out[-1].startswith("f OK"), out[-1]
    out = z.cmd("g", "COMPRESS DEFLATE")
    assert out[-1].startswith("g NO [COMPRESSIONACTIVE]"), out
    out = z.cmd("h", "LOGOUT")
    assert out[0].startswith("* BYE") and out[-1].startswith("h OK"), out
    r.close()


def test_pipelined_commands_answered_in_order(imap_server):
    """Pipelined FETCHes run back to back on a worker (imapd.c "chain"); whatever comes between
    them (another command, a FETCH the handler refuses, a syntax error, a literal) is answered
    in its turn, and every response keeps its place."""
    r = raw_login(imap_server, select="INBOX")
    r.send("a1 UID FETCH 1:3 (UID)\r\na2 FETCH 2 (UID RFC822.SIZE)\r\na3 NOOP\r\n"
           "a4 FETCH 3 (UID)\r\na5 FETCH 1 (NOSUCHITEM)\r\na6 FETCH 4 (UID)\r\n"
           "a7 FETCH 1:2 (FLAGS\r\na8 FETCH 5 (UID)\r\n"
           "a9 FETCH 6 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\nb1 FETCH 7 (UID)\r\n"
           "b2 SEARCH SUBJECT {5}\r\n")
    out = lines(r.read_response("b1"))
    tagged = [l.split(" ")[0] for l in out if not l.startswith("*") and re.match(r"^[ab]\d ", l)]
    assert tagged == ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b1"], out
    status = {l.split(" ")[0]: l.split(" ")[1] for l in out if re.match(r"^[ab]\d ", l)}
    assert [status[t] for t in ("a5", "a7")] == ["BAD", "BAD"] and status["a6"] == "OK", out
    seqs = [int(m.group(1)) for m in (re.match(r"^\* (\d+) FETCH", l) for l in out) if m]
    assert seqs[:3] == [1, 2, 3] and seqs[3:] == [2, 3, 4, 5, 6, 7], seqs
    assert r.read_line().startswith(b"+ "), "no continuation for the literal after the chain"
    r.send("zzzzz\r\n")
    assert lines(r.read_response("b2"))[-1].startswith("b2 OK")
    # more than the chain holds (IMAPD_CHAIN_MAX, 64): the rest waits in the input, in order
    r.send("".join("c%d FETCH %d (UID)\r\n" % (i, i % 50 + 1) for i in range(300)))
    out = lines(r.read_response("c299"))
    tags = [l.split(" ")[0] for l in out if l.startswith("c")]
    assert tags == ["c%d" % i for i in range(300)], tags[:5]
    assert all(" OK " in l for l in out if l.startswith("c")), [l for l in out if " OK " not in l][:3]
    r.close()


def test_compress_turned_off(small):
    """An operator may turn COMPRESS off (it costs server CPU where links are fast): it is then
    neither advertised nor accepted, and the session carries on uncompressed."""
    d = small.start("--imap-compress", "off")
    try:
        r = raw_login(d)
        out = expect(r, "a", "CAPABILITY", "OK")
        assert "COMPRESS=DEFLATE" not in caps_of(out[0]), out[0]
        expect(r, "b", "COMPRESS DEFLATE", "NO", "CANNOT")
        expect(r, "c", "SELECT INBOX", "OK")
        r.close()
    finally:
        d.stop()


# ------------------------------------------------------------------ the read-only archive

def test_write_commands_refused_archive_unchanged(imap_server):
    arca = imap_server.arca
    before = (arca.folders(), arca.json("stats"))
    r = raw_login(imap_server, select="INBOX")
    msg = make_msg(subject="appended?")
    for tag, text in (("a", "STORE 1 +FLAGS (\\Deleted)"), ("b", "UID STORE 1 FLAGS (\\Seen)"),
                      ("c", "COPY 1 Sent"), ("d", "UID COPY 1:* Sent"), ("e", "MOVE 1 Sent"),
                      ("f", "UID MOVE 1 Sent"), ("g", "EXPUNGE"), ("h", "UID EXPUNGE 1"),
                      ("i", "CREATE NewFolder"), ("j", "DELETE Sent"), ("k", "RENAME Sent Other")):
        expect(r, tag, text, "NO", "NOPERM")
    r.send(b"l APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(msg), msg))
    t = tagged(r.read_response("l"))
    assert t.startswith("l NO [NOPERM]"), t
    out = expect(r, "m", "NOOP", "OK")
    assert len(out) == 1, "nothing may change: %r" % out
    r.close()
    c = login(imap_server)
    typ, data = c.append("INBOX", None, None, msg)
    assert typ == "NO" and b"[NOPERM]" in data[0], data
    c.logout()
    after = (arca.folders(), arca.json("stats"))
    assert after[0] == before[0], "folders changed:\n%s\n%s" % (before[0], after[0])
    assert [s["messages"] for s in after[1]["stores"]] == [s["messages"] for s in before[1]["stores"]]


def test_uid_commands(imap_server):
    r = raw_login(imap_server, select="Sent")
    out = expect(r, "a", "UID SEARCH ALL", "OK")
    uids = [int(x) for x in out[0].split()[2:]]
    out = expect(r, "b", "UID FETCH %d:%d (UID)" % (uids[1], uids[2]), "OK")
    assert [ln.split()[1] for ln in out[:-1]] == ["2", "3"], out
    # UIDs that do not exist are ignored; message numbers beyond the mailbox are not
    out = expect(r, "c", "UID FETCH %d:%d UID" % (uids[-1] + 1, uids[-1] + 100), "OK")
    assert out[:-1] == [], out
    out = expect(r, "d", "UID FETCH * UID", "OK")
    assert out[0] == "* %d FETCH (UID %d)" % (len(uids), uids[-1]), out
    expect(r, "e", "UID SORT (SIZE) UTF-8 UID %d" % uids[0], "OK")
    expect(r, "f", "UID THREAD REFERENCES UTF-8 UID %d" % uids[0], "OK")
    expect(r, "g", "UID NOSUCH 1", "BAD")
    expect(r, "h", "UID", "BAD")
    assert_usable(r)
    r.close()


# ------------------------------------------------------------------ limits and timeouts

def test_max_user_connections(small):
    d = small.start("--max-user-conns", "2")
    try:
        a1, a2 = raw_login(d), raw_login(d)
        r = d.raw()
        r.read_line()
        expect(r, "a", "LOGIN alice %s" % PW["alice"], "NO", "LIMIT")
        expect(r, "b", "LOGIN bob %s" % PW["bob"], "OK")  # other users are not limited by alice
        a1.cmd("z", "LOGOUT")
        a1.close()
        # the slot is free once the server has closed the session: try until it has
        for i in range(200):
            f = d.raw()
            f.read_line()
            t = tagged(f.cmd("c%d" % i, "LOGIN alice %s" % PW["alice"]))
            f.close()
            if t.startswith("c%d OK" % i):
                break
            assert "[LIMIT]" in t, t
            time.sleep(0.05)
        else:
            raise AssertionError("alice could not log in after one of her sessions ended")
        a2.close()
        r.close()
    finally:
        d.stop()


def test_login_timeout_and_authenticated_timeout(small):
    # --idle-timeout 1: below the 30-minute minimum (RFC 9051 §5.4), so the server uses 30 min
    d = small.start("--login-timeout", "2", "--idle-timeout", "1")
    try:
        authed = raw_login(d)  # idle from now on, longer than `pre` below
        pre = d.raw()
        pre.sock.settimeout(120)
        assert pre.read_line().startswith(b"* OK")
        bye = pre.read_line()  # blocks until the pre-auth timeout
        assert bye.startswith(b"* BYE"), "the login timeout must say BYE: %r" % bye
        with pytest.raises((EOFError, OSError)):
            pre.read_line()
        pre.close()
        assert_usable(authed)  # idle longer than the login timeout and than 1 s: still there
        authed.close()
    finally:
        d.stop()


def test_line_and_literal_limits(imap_server):
    r = raw_login(imap_server)
    r.send(b"a NOOP " + b"x" * (64 * 1024 + 10) + b"\r\n")
    t = r.read_line()
    assert t.startswith(b"a BAD [TOOBIG]"), "overlong line: %r" % t
    assert_usable(r, "z1")
    r.send(b"b LOGIN {2000000}\r\n")
    t = r.read_line()
    assert t.startswith(b"b BAD [TOOBIG]"), "overlong synchronizing literal: %r" % t
    assert_usable(r, "z2")
    r.send(b"c ID ({2000000+}\r\n" + b"y" * 2000000 + b" NIL)\r\n")
    t = r.read_line()
    assert t.startswith(b"c BAD [TOOBIG]"), "overlong non-synchronizing literal: %r" % t
    assert_usable(r, "z3")
    r.close()


# ------------------------------------------------------------------ malformed input, wrong state

def test_unterminated_literal(imap_server):
    r = raw_login(imap_server)
    r.send(b"a LOGIN {10}\r\n")
    assert r.read_line().startswith(b"+ ")
    r.send(b"abc\r\n")  # 5 of the 10 octets; the next command line completes the literal
    r.send(b"b NOOP\r\n")
    t = r.read_line()
    assert t.startswith(b"a BAD"), "the mangled command must be BAD: %r" % t
    assert_usable(r)
    r.close()


@pytest.mark.parametrize("seqset", ["0", "1:", "a:b", "4294967296", "1,,2", ":", "1:0", "*:", "$$", "-1"])
def test_bad_sequence_sets(imap_server, seqset):
    r = raw_login(imap_server, select="INBOX")
    expect(r, "a", "FETCH %s UID" % seqset, "BAD")
    expect(r, "b", "UID FETCH %s UID" % seqset, "BAD")
    expect(r, "c", "SEARCH UID %s" % seqset, "BAD")
    assert_usable(r)
    r.close()


def test_message_number_beyond_mailbox_is_bad(imap_server):
    r = raw_login(imap_server, select="Sent")
    n = len(imap_server.expect["Sent"])
    expect(r, "a", "FETCH %d UID" % (n + 1), "BAD")  # RFC 9051 §6.4.8
    assert_usable(r)
    r.close()


@pytest.mark.parametrize("line", [
    "FOO", "FOO bar", "SELEC INBOX", "FETCH", "FETCH 1", "SELECT", "EXAMINE", "LOGIN alice",
    "STATUS INBOX", "STATUS", "LIST", "LIST \"\"", "SEARCH", "SORT", "SORT (SIZE)", "THREAD",
    "THREAD REFERENCES", "ENABLE", "ID", "COMPRESS", "FETCH 1 (UID", "FETCH 1 UID)",
    "FETCH 1 BODY[1.MIME", "LOGIN \"alice", "FETCH 1 BODY[HEADER.FIELDS ()]",
    "SEARCH (ALL", "SEARCH NOT", "SEARCH LARGER x", "SEARCH ON 32-Jan-2024",
])
def test_malformed_commands_are_bad(imap_server, line):
    r = raw_login(imap_server, select="INBOX")
    expect(r, "a", line, "BAD")
    assert_usable(r)
    r.close()


def test_empty_and_tagless_lines(imap_server):
    r = raw_login(imap_server)
    r.send(b"\r\n")
    assert r.read_line().startswith(b"* BAD"), "an empty line gets an untagged BAD"
    r.send(b"lonelytag\r\n")
    assert r.read_line().startswith(b"lonelytag BAD")
    r.send(b"a\x01b NOOP\r\n")
    assert b" BAD" in r.read_line()
    assert_usable(r)
    r.close()


@pytest.mark.parametrize("state,line", [
    ("notauth", "FETCH 1 UID"), ("notauth", "SELECT INBOX"), ("notauth", "LIST \"\" \"*\""),
    ("notauth", "SEARCH ALL"), ("notauth", "IDLE"), ("notauth", "COMPRESS DEFLATE"),
    ("auth", "LOGIN alice alice-pw-1"), ("auth", "AUTHENTICATE PLAIN"), ("auth", "STARTTLS"),
    ("auth", "FETCH 1 UID"), ("auth", "SEARCH ALL"), ("auth", "CLOSE"), ("auth", "UNSELECT"),
    ("auth", "CHECK"), ("auth", "UID FETCH 1 UID"), ("auth", "SORT (SIZE) UTF-8 ALL"),
    ("selected", "LOGIN alice alice-pw-1"), ("selected", "STARTTLS"),
])
def test_commands_in_the_wrong_state(imap_server, state, line):
    if state == "notauth":
        r = imap_server.raw()
        r.read_line()
    else:
        r = raw_login(imap_server, select="INBOX" if state == "selected" else None)
    out = expect(r, "a", line, "BAD")
    if state != "notauth":
        assert "select" in out[-1].lower() or "login" in out[-1].lower(), (
            "the BAD should say what state is needed: %r" % out[-1])
    assert_usable(r)
    r.close()


def test_login_after_login_says_why(imap_server):
    r = raw_login(imap_server)
    t = expect(r, "a", "LOGIN alice %s" % PW["alice"], "BAD")[-1]
    assert "selected mailbox" not in t, "LOGIN after login is not about a selected mailbox: %r" % t
    r.close()

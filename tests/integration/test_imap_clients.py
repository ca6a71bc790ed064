"""Real IMAP clients against arcad: mbsync (isync) pulls alice's whole archive and a second run
transfers nothing; the server's bytes are the archived bytes (checked for every message over
plain imaplib, since mbsync itself changes two things when it writes a Maildir: it adds an
X-TUID header line and drops CR characters, storing LF line ends; the test undoes exactly
those); curl's imap:// client lists, fetches and searches."""
import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from arcad import FOLDERS, imap_server  # noqa: F401  (fixture)
from conftest import describe

TUID = re.compile(rb"^X-TUID: [A-Za-z0-9+/]{12}\r?\n", re.M)


def strip_tuid(data):
    """mbsync writes an X-TUID header line into every message it stores (its own bookkeeping,
    see mbsync(1)); everything else must be the archived bytes."""
    head, sep, body = data.partition(b"\n\n")
    head2, n = TUID.subn(b"", head + b"\n", count=1)
    assert n == 1, "expected exactly one X-TUID line from mbsync"
    return head2[:-1] + sep + body


def maildir_files(root):
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) not in ("cur", "new"):
            continue
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p
    return out


def mbsyncrc(path, server, maildir, user, password):
    path.write_text("""IMAPAccount arca
Host 127.0.0.1
Port %d
User %s
Pass %s
SSLType IMAPS
CertificateFile %s

IMAPStore arca-remote
Account arca

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel arca
Far :arca-remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
""" % (server.imaps_port, user, password, server.cert(), maildir, maildir))


def run_mbsync(rc):
    p = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, timeout=900)
    assert p.returncode == 0, "mbsync failed\n" + describe(p)
    return p


def test_mbsync_pulls_everything_byte_exact_then_nothing(imap_server, tmp_path):
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    rc = tmp_path / "mbsyncrc"
    mbsyncrc(rc, imap_server, maildir, "alice", imap_server.users["alice"])
    run_mbsync(rc)
    files = maildir_files(maildir)
    got = {f: {} for f in FOLDERS}
    for rel, p in files.items():
        folder = str(Path(rel).parent.parent)
        assert folder in got, "unexpected folder %s" % folder
        sha = hashlib.sha256(strip_tuid(p.read_bytes())).hexdigest()
        got[folder][sha] = got[folder].get(sha, 0) + 1
    want = {f: set() for f in FOLDERS}
    for i, p in enumerate(sorted(imap_server.corpus.files)):
        want[FOLDERS[i % len(FOLDERS)]].add(hashlib.sha256(p.read_bytes().replace(b"\r", b"")).hexdigest())
    for f in FOLDERS:
        assert sum(got[f].values()) == len(imap_server.expect[f]), \
            "%s: %d messages pulled, %d archived" % (f, sum(got[f].values()), len(imap_server.expect[f]))
        assert set(got[f]) == want[f], "%s: pulled bytes differ from the originals" % f
    before = {rel: (p.stat().st_size, p.stat().st_mtime_ns) for rel, p in maildir_files(maildir).items()}
    # a second run transfers nothing: no new file, nothing rewritten
    run_mbsync(rc)
    after = {rel: (p.stat().st_size, p.stat().st_mtime_ns) for rel, p in maildir_files(maildir).items()}
    assert after == before


def test_every_message_is_served_byte_exact(imap_server):
    """FETCH BODY.PEEK[] of every message of every folder gives the archived bytes."""
    c = imap_server.login("alice", imap_server.users["alice"])
    try:
        for f in FOLDERS:
            typ, data = c.select('"%s"' % f, readonly=True)
            assert typ == "OK", (f, data)
            typ, data = c.fetch("1:*", "(BODY.PEEK[])")
            assert typ == "OK", data
            shas = set()
            for item in data:
                if isinstance(item, tuple):
                    shas.add(hashlib.sha256(item[1]).hexdigest())
            assert shas == imap_server.expect[f], "%s: served bytes differ from the archived ones" % f
    finally:
        c.logout()


def curl(server, url_path, *extra, user="alice"):
    url = "imaps://127.0.0.1:%d/%s" % (server.imaps_port, url_path)
    p = subprocess.run(["curl", "-sS", "--cacert", server.cert(), "--resolve",
                        "localhost:%d:127.0.0.1" % server.imaps_port,
                        "-u", "%s:%s" % (user, server.users[user]),
                        url.replace("127.0.0.1", "localhost"), *extra],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, "curl failed\n" + describe(p)
    return p.stdout


def test_curl_lists_folders(imap_server):
    out = curl(imap_server, "").decode()
    names = set()
    for line in out.splitlines():
        m = re.match(r'^\* LIST \(([^)]*)\) "/" (.*)$', line)
        assert m, "not a LIST line: %r" % line
        names.add(m.group(2).strip('"'))
    for f in FOLDERS:
        assert f in names, "%s missing from curl's list: %s" % (f, sorted(names))


def test_curl_fetches_a_message_byte_exact(imap_server):
    data = curl(imap_server, "INBOX;UID=1")
    assert hashlib.sha256(data).hexdigest() in imap_server.expect["INBOX"]


def test_curl_searches(imap_server):
    out = curl(imap_server, "INBOX?SUBJECT%20sequences").decode()
    m = re.match(r"^\* SEARCH((?: \d+)*)\r?\n$", out)
    assert m, "unexpected curl search output %r" % out
    assert len(m.group(1).split()) > 0

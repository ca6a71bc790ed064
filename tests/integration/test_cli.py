"""arcactl command-line behaviour (docs/cli.md): errors, stores, rollover, odd messages,
Maildir and directory imports, search, stats."""
import json
import os
import secrets
import stat
import subprocess

import pytest

from conftest import (ARCACTL, ID_RE, Arca, decode, describe, make_msg, new_arca, search,
                      sha256, tree_listing)


def assert_error(p, code, *words):
    assert p.returncode == code, "expected exit %d\n%s" % (code, describe(p))
    err = decode(p.stderr)
    assert err.strip(), "no error message on stderr\n" + describe(p)
    if code == 1:
        assert err.startswith("arcactl: "), "error message must start with 'arcactl: '\n" + describe(p)
    for w in words:
        assert w.lower() in err.lower(), "error message should mention %r\n%s" % (w, describe(p))


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def ids_of(hits):
    return [h["id"] for h in hits]


def subjects_of(hits):
    """Sorted subjects of the distinct messages hit (test_search_one_hit_per_message checks
    that a message is not listed twice)."""
    return sorted({h["id"]: h["subject"] for h in hits}.values())


# --- usage and input errors --------------------------------------------------------------

def test_unknown_command(arca):
    assert_error(arca.run("frobnicate", check=False), 2)


def test_no_command():
    p = subprocess.run([str(ARCACTL)], capture_output=True)
    assert p.returncode == 2, describe(p)


def test_unknown_option(arca):
    assert_error(arca.run("folders", "--no-such-option", check=False), 2, "--no-such-option")


def test_import_without_archive(arca, tmp_path):
    src = write(tmp_path / "m.eml", make_msg())
    assert_error(arca.run("import", src, check=False), 2, "--archive")


def test_import_nonexistent_source(arca, tmp_path):
    missing = tmp_path / "does-not-exist.mbox"
    assert_error(arca.run("import", "--archive", "alice", missing, check=False), 1, str(missing))
    assert arca.folders() == []


def test_get_unknown_id(arca):
    assert_error(arca.run("get", "1:999", check=False), 1)
    p = arca.run("get", "not-an-id", check=False)
    assert p.returncode in (1, 2), describe(p)
    assert decode(p.stderr).strip(), describe(p)


def test_command_without_instance(tmp_path):
    a = Arca(tmp_path / "nothing", tmp_path / "nothing.key")
    assert_error(a.run("folders", check=False), 1)


def test_missing_key_file(arca, tmp_path):
    other = Arca(arca.base, tmp_path / "no-such.key")
    p = other.run("import", "--archive", "alice", write(tmp_path / "m.eml", make_msg()), check=False)
    assert_error(p, 1, "key")
    assert not (tmp_path / "no-such.key").exists(), "a non-init command created a key file"


def snapshot(inst):
    """Everything observable that must not change: container bytes and the folder list."""
    content = {str(f): sha256(f.read_bytes()) for f in inst.content_files()}
    return content, inst.folders()


def test_wrong_key_file(arca, tmp_path):
    arca.import_(write(tmp_path / "a.eml", make_msg(subject="first message")), "alice", "Inbox")
    before = snapshot(arca)
    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_text(secrets.token_hex(32) + "\n")
    os.chmod(wrong_key, 0o600)
    key_text = wrong_key.read_text()
    wrong = Arca(arca.base, wrong_key)
    second = write(tmp_path / "b.eml", make_msg(subject="second message"))
    assert_error(wrong.run("import", "--archive", "alice", "--folder", "Inbox", second,
                           check=False), 1, "key")
    assert_error(wrong.run("get", "1:1", check=False), 1, "key")
    assert_error(wrong.run("verify", check=False), 1, "key")
    assert_error(wrong.run("export", "--format", "eml", "--out", tmp_path / "x", check=False), 1, "key")
    assert wrong_key.read_text() == key_text, "the wrong key file was modified"
    assert snapshot(arca) == before, "a run with the wrong key changed the instance"
    arca.assert_verify_clean(expect_checked=1)


def test_search_syntax_errors(arca, tmp_path):
    arca.import_(write(tmp_path / "a.eml", make_msg()), "alice", "Inbox")
    for query in ("(budget OR lunch", 'subject:"unterminated', "budget AND", "form:alice"):
        p = arca.run("search", query, check=False)
        assert p.returncode in (1, 2), "query %r\n%s" % (query, describe(p))
        err = decode(p.stderr)
        assert "column" in err.lower(), (
            "syntax error for %r should name the column\n%s" % (query, describe(p)))


# --- init, verify, global options ----------------------------------------------------------

def test_init_creates_key_and_prints_recovery_key(tmp_path):
    a = new_arca(tmp_path / "i", init=False)
    p = a.init()
    assert a.base.is_dir()
    mode = stat.S_IMODE(a.key_file.stat().st_mode)
    assert mode == 0o600, "key file mode %o" % mode
    key = a.key_file.read_text().strip()
    assert len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key), "key file: %r" % key
    assert "recovery" in decode(p.stdout).lower(), "init should print the recovery key\n" + describe(p)
    # the instance key must not be stored in the base directory
    for path in tree_listing(a.base):
        data = (a.base / path).read_bytes()
        assert key.encode() not in data and bytes.fromhex(key) not in data, (
            "the instance key is stored in %s" % path)


def test_init_twice_keeps_data(arca, tmp_path):
    arca.import_(write(tmp_path / "a.eml", make_msg()), "alice", "Inbox")
    p = arca.run("init", check=False)
    assert p.returncode in (0, 1), describe(p)
    assert arca.folder_count("alice", "Inbox") == 1, "a second init lost data"
    arca.assert_verify_clean(expect_checked=1)


def test_verify_fresh_instance(arca):
    rc, data = arca.verify()
    assert rc == 0 and data == {"checked": 0, "damaged": []}, data


def test_environment_and_trailing_global_options(arca, tmp_path):
    arca.import_(write(tmp_path / "a.eml", make_msg()), "alice", "Inbox")
    env = dict(os.environ, ARCA_BASE=str(arca.base), ARCA_KEY_FILE=str(arca.key_file))
    p = subprocess.run([str(ARCACTL), "folders", "--json"], capture_output=True, env=env)
    assert p.returncode == 0, describe(p)
    assert json.loads(p.stdout) == [{"archive": "alice", "folder": "Inbox", "messages": 1}]
    p = subprocess.run([str(ARCACTL), "folders", "--json", "--base", str(arca.base),
                        "--key-file", str(arca.key_file)], capture_output=True)
    assert p.returncode == 0, describe(p)
    assert json.loads(p.stdout) == [{"archive": "alice", "folder": "Inbox", "messages": 1}]


# --- stores ------------------------------------------------------------------------------

def store_state(inst, sid):
    for s in inst.store_list():
        if str(s.get("id")) == str(sid):
            return s.get("state")
    return None


def test_store_list_fresh(arca):
    stores = arca.store_list()
    assert len(stores) == 1, stores
    assert str(stores[0]["id"]) == "1" and stores[0]["state"] == "current", stores


def test_store_states_and_new_current_store(arca, tmp_path):
    a1 = write(tmp_path / "a.eml", make_msg(subject="into store one"))
    b1 = write(tmp_path / "b.eml", make_msg(subject="into store two"))
    arca.import_(a1, "alice", "Inbox")
    arca.run("store", "set-state", "1", "write-protected")
    assert store_state(arca, 1) == "write-protected"
    p = arca.run("import", "--archive", "alice", "--folder", "Inbox", b1, check=False)
    assert p.returncode == 1, "import into a write-protected store\n" + describe(p)
    err = decode(p.stderr).lower()
    assert err.startswith("arcactl: ") and ("write-protected" in err or "current" in err), describe(p)
    assert arca.folder_count("alice", "Inbox") == 1
    # reading still works
    assert arca.get("1:1").stdout == a1.read_bytes()

    arca.run("store", "create", "--name", "second", "--current")
    stores = arca.store_list()
    assert len(stores) == 2, stores
    assert store_state(arca, 2) == "current", stores
    assert store_state(arca, 1) == "write-protected", stores
    s = arca.import_(b1, "alice", "Inbox")
    assert s["archived"] == 1, s
    hits = search(arca, "store")
    got = {h["subject"]: h["id"] for h in hits}
    assert got.get("into store two", "").startswith("2:"), hits
    assert got.get("into store one", "").startswith("1:"), hits
    assert arca.get(got["into store two"]).stdout == b1.read_bytes()
    # content is deduplicated per store (DESIGN.md section 2): a message whose only copy is in a
    # write-protected store is archived again into the current store
    s = arca.import_(a1, "alice", "Other")
    assert s["archived"] == 1 and s["errors"] == 0, s
    assert arca.folder_count("alice", "Other") == 1
    arca.assert_verify_clean()

    arca.run("store", "set-state", "1", "disabled")
    assert store_state(arca, 1) == "disabled"
    p = arca.run("store", "set-state", "1", "bogus", check=False)
    assert p.returncode in (1, 2), describe(p)
    p = arca.run("store", "set-state", "99", "normal", check=False)
    assert p.returncode == 1, describe(p)


def test_store_create_with_paths(arca, tmp_path):
    outside = tmp_path / "outside-content"
    arca.run("store", "create", "--content", outside, "--index", "~/idx2", "--current")
    m = write(tmp_path / "a.eml", make_msg(subject="stored elsewhere"))
    s = arca.import_(m, "alice", "Inbox")
    assert s["archived"] == 1, s
    files = [p for p in outside.rglob("*") if p.is_file()]
    assert files and sum(p.stat().st_size for p in files) > 0, "nothing written to %s" % outside
    assert (arca.base / "idx2").exists(), "--index ~/idx2 not created under the base dir"
    assert subjects_of(search(arca, "elsewhere")) == ["stored elsewhere"]


def test_automatic_rollover(tmp_path):
    a = new_arca(tmp_path / "roll", init_args=("--store-max-messages", "100"))
    src = tmp_path / "msgs"
    for i in range(250):
        write(src / ("m%03d.eml" % i), make_msg(
            subject="rollover message %03d" % i, body="rolloverword number%03d\n" % i,
            date="Mon, 03 Jun 2024 %02d:%02d:00 +0000" % (i // 60, i % 60)))
    s = a.import_(src, "alice", "Inbox")
    assert (s["archived"], s["errors"]) == (250, 0), s
    stores = a.store_list()
    assert len(stores) == 3, "250 messages at 100 per store: %r" % stores
    states = sorted(st["state"] for st in stores)
    assert states == ["current", "normal", "normal"], stores
    ids = set()
    page = 1
    while True:
        hits = search(a, "rolloverword", "--per-page", "100", "--page", str(page))
        if not hits:
            break
        ids.update(ids_of(hits))
        page += 1
        assert page < 10
    assert len(ids) == 250, "search found %d of 250 across the stores" % len(ids)
    assert {i.split(":")[0] for i in ids} == {"1", "2", "3"}, sorted(ids)[:5]
    assert a.folder_count("alice", "Inbox") == 250
    a.assert_verify_clean(expect_checked=250)
    # a single word in the last store
    assert subjects_of(search(a, "number249")) == ["rollover message 249"]
    assert subjects_of(search(a, "number000")) == ["rollover message 000"]


# --- odd messages --------------------------------------------------------------------------

# every malformed message but the header-less one has a Date header, so that its warning
# is about the malformation
DATE = b"Date: Mon, 03 Jun 2024 10:00:00 +0000\n"
MALFORMED = {
    "no-headers": (b"quetzalword is in this message which has no header lines at all\n"
                   b"just body text\n", "quetzalword"),
    "binary-nuls": (b"Subject: binary junk xylophonequux\nFrom: junk@example.com\n" + DATE + b"\n"
                    + bytes(range(256)) * 8 + b"\x00\x00\x00end\n", "xylophonequux"),
    "broken-boundary": (b"From: a@example.com\nSubject: broken boundary\n" + DATE + b"MIME-Version: 1.0\n"
                        b"Content-Type: multipart/mixed; boundary=\"XYZ\"\n\n"
                        b"--ABC\nContent-Type: text/plain\n\nmarimbaword inside a part\n"
                        b"--ABC\nContent-Type: text/html\n\n<p>no closing boundary\n", "marimbaword"),
    "bad-base64": (b"From: a@example.com\nSubject: bad base64 vibraphoneword\n" + DATE + b"MIME-Version: 1.0\n"
                   b"Content-Type: multipart/mixed; boundary=\"b1\"\n\n"
                   b"--b1\nContent-Type: text/plain\n\nhello there\n"
                   b"--b1\nContent-Type: application/octet-stream\n"
                   b"Content-Transfer-Encoding: base64\n\n!!!! this is *not* base64 @@@ ====x\n"
                   b"--b1--\n", "vibraphoneword"),
    "8bit-no-charset": (b"From: a@example.com\nSubject: eight bit\n" + DATE + b"Content-Type: text/plain\n\n"
                        b"caf\xe9 glockenspielword na\xefve \xe0 la carte\n", "glockenspielword"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_message(arca, tmp_path, name):
    data, word = MALFORMED[name]
    src = write(tmp_path / (name + ".eml"), data)
    p = arca.run("import", "--archive", "alice", "--folder", "Odd", "--json", src, check=False)
    assert p.returncode == 0, describe(p)
    s = json.loads(p.stdout)
    assert (s["archived"], s["errors"]) == (1, 0), s
    assert s["warnings"] == 1, "a %s message should count as one warning: %r" % (name, s)
    err = decode(p.stderr).lower()
    assert "warn" in err, "the warning's reason should be on stderr\n" + describe(p)
    if name != "no-headers":
        assert "no date" not in err, describe(p)
    hits = search(arca, word)
    assert len(hits) == 1, "search %r: %r" % (word, hits)
    assert arca.get(hits[0]["id"]).stdout == data, "get is not byte-identical"
    arca.assert_verify_clean(expect_checked=1)


def test_special_bytes_roundtrip(arca, tmp_path):
    """Messages without a final newline, with CRLF, with a leading From_ line, empty body."""
    msgs = {
        "noeol": make_msg(subject="no eol", body="last line without newline"),
        "crlf": make_msg(subject="crlf", body="line one\nline two\n").replace(b"\n", b"\r\n"),
        "fromline": b"From someone@example.com  Mon Jun  3 10:00:00 2024\n" + make_msg(subject="from line"),
        "bodyfrom": make_msg(subject="body from", body="text\nFrom here on\n>From quoted\n"),
        "empty-body": make_msg(subject="empty body", body=""),
    }
    src = tmp_path / "special"
    for n, d in msgs.items():
        write(src / (n + ".eml"), d)
    s = arca.import_(src, "alice", "Special")
    assert s["archived"] == len(msgs) and s["errors"] == 0, s
    got = arca.export_eml(tmp_path / "out", "--archive", "alice", "--folder", "Special")
    assert sorted(got.values()) == sorted(sha256(d) for d in msgs.values())
    # and through mbox
    mbox = tmp_path / "special.mbox"
    arca.run("export", "--archive", "alice", "--folder", "Special", "--format", "mbox", "--out", mbox)
    s = arca.import_(mbox, "bob", "Again", "--format", "mbox")
    assert s["duplicates"] == len(msgs), "mbox round trip changed messages: %r" % s


def test_empty_file_is_an_error_or_warning(arca, tmp_path):
    src = write(tmp_path / "empty.eml", b"")
    p = arca.run("import", "--archive", "alice", "--folder", "E", "--json", "--quiet", src, check=False)
    assert p.returncode in (0, 1), describe(p)
    if p.returncode == 0:
        s = json.loads(p.stdout)
        assert s["errors"] + s["warnings"] >= 1, "an empty file was silently archived: %r" % s


# --- import formats ------------------------------------------------------------------------

def test_maildir_import(arca, tmp_path):
    md = tmp_path / "Mail"
    for d in ("cur", "new", "tmp", ".Sub/cur", ".Sub/new", ".Sub/tmp", ".Sub.Deeper/cur",
              ".Sub.Deeper/new", ".Sub.Deeper/tmp"):
        (md / d).mkdir(parents=True, exist_ok=True)
    msgs = {
        "cur/1717400000.M1P1.host:2,S": make_msg(subject="maildir cur one"),
        "cur/1717400001.M2P1.host:2,RS": make_msg(subject="maildir cur two"),
        "new/1717400002.M3P1.host": make_msg(subject="maildir new three"),
        ".Sub/cur/1717400003.M4P1.host:2,S": make_msg(subject="maildir sub four"),
        ".Sub.Deeper/new/1717400004.M5P1.host": make_msg(subject="maildir deeper five"),
    }
    for rel, d in msgs.items():
        write(md / rel, d)
    s = arca.import_(md, "alice", None)  # default folder: the source's base name, format auto
    assert (s["archived"], s["errors"]) == (5, 0), s
    got = sorted((f["folder"], f["messages"]) for f in arca.folders("alice"))
    assert got == [("Mail", 3), ("Mail/Sub", 1), ("Mail/Sub/Deeper", 1)], got
    hits = search(arca, "deeper")
    assert len(hits) == 1 and hits[0]["folders"] == ["alice/Mail/Sub/Deeper"], hits
    assert arca.get(hits[0]["id"]).stdout == msgs[".Sub.Deeper/new/1717400004.M5P1.host"]


def test_directory_tree_import(arca, tmp_path):
    tree = tmp_path / "Tree"
    msgs = {
        "a.eml": make_msg(subject="tree top a"),
        "b.eml": make_msg(subject="tree top b"),
        "Sub/c.eml": make_msg(subject="tree sub c"),
        "Sub/Deeper/d.eml": make_msg(subject="tree deeper d"),
    }
    for rel, d in msgs.items():
        write(tree / rel, d)
    s = arca.import_(tree, "alice", None)
    assert (s["archived"], s["errors"]) == (4, 0), s
    got = sorted((f["folder"], f["messages"]) for f in arca.folders("alice"))
    assert got == [("Tree", 2), ("Tree/Sub", 1), ("Tree/Sub/Deeper", 1)], got
    # with --folder the tree goes below that folder
    s = arca.import_(tree, "bob", "Imported")
    got = sorted((f["folder"], f["messages"]) for f in arca.folders("bob"))
    assert got == [("Imported", 2), ("Imported/Sub", 1), ("Imported/Sub/Deeper", 1)], got


def test_mbox_import(arca, tmp_path):
    m1 = make_msg(subject="mbox one", body="plain\n")
    m2 = make_msg(subject="mbox two", body="quoted\nFrom the start of a line\n>From already quoted\n")
    m3 = make_msg(subject="mbox three", body="last\n")
    mbox = (b"From a@example.com Mon Jun  3 10:00:00 2024\n" + m1 + b"\n"
            b"From b@example.com Mon Jun  3 10:01:00 2024\n"
            + m2.replace(b"\nFrom the", b"\n>From the").replace(b"\n>From already", b"\n>>From already")
            + b"\n"
            b"From c@example.com Mon Jun  3 10:02:00 2024\n" + m3 + b"\n")
    src = write(tmp_path / "box.mbox", mbox)
    s = arca.import_(src, "alice", "Box")  # format auto-detected
    assert (s["archived"], s["errors"]) == (3, 0), s
    got = arca.export_eml(tmp_path / "out", "--archive", "alice", "--folder", "Box")
    assert sorted(got.values()) == sorted(sha256(m) for m in (m1, m2, m3)), (
        "mboxrd import did not give back the original messages")


def test_progress_and_summary_without_json(arca, tmp_path):
    src = tmp_path / "few"
    for i in range(3):
        write(src / ("%d.eml" % i), make_msg(subject="summary %d" % i))
    p = arca.run("import", "--archive", "alice", "--folder", "F", src)
    out = decode(p.stdout).lower()
    assert "3" in out and "archived" in out, "summary on stdout\n" + describe(p)


def test_commit_log_format(arca, tmp_path):
    src = tmp_path / "few"
    msgs = [make_msg(subject="log %d" % i) for i in range(5)]
    for i, m in enumerate(msgs):
        write(src / ("%d.eml" % i), m)
    log = tmp_path / "commit.log"
    s = arca.import_(src, "alice", "F", "--commit-log", log, "--batch", "2")
    assert s["batches"] == 3, s
    lines = log.read_text().splitlines()
    assert len(lines) == 5, lines
    shas = {sha256(m) for m in msgs}
    for line in lines:
        sha, mid, kind = line.split(" ")
        assert sha in shas and kind == "new", line
    s = arca.import_(src, "alice", "G", "--commit-log", log)
    lines = log.read_text().splitlines()
    assert len(lines) == 10 and all(l.endswith(" dup") for l in lines[5:]), lines


# --- search --------------------------------------------------------------------------------

SEARCH_MSGS = [
    dict(subject="Quarterly budget review", sender="Alice Example <alice@example.com>",
         date="Mon, 15 Jan 2024 09:00:00 +0000",
         body="Please find the spreadsheet attached. zebra\nThe budget is on page two.\n"),
    dict(subject="Lunch on Friday", sender="Bob Builder <bob@example.org>",
         date="Tue, 20 Feb 2024 12:00:00 +0000", body="Shall we meet at the usual place? giraffe\n"),
    dict(subject="Budget approval needed", sender="Carol Jones <carol@example.net>",
         date="Sun, 10 Mar 2024 08:30:00 +0000",
         body="budget budget budget. The budget numbers look fine. zebra giraffe\n"),
    dict(subject="Holiday photos", sender="Alice Example <alice@example.com>",
         date="Sun, 24 Dec 2023 18:00:00 +0000", body="Merry christmas everyone\n"),
]
SEARCH_MSGS += [
    dict(subject="=?utf-8?q?Caf=C3=A9_meeting?=", sender="Eve <eve@example.com>",
         date="Sat, 20 Jan 2024 09:00:00 +0000", ctype="text/plain; charset=utf-8",
         headers=("Content-Transfer-Encoding: 8bit",),
         body="Let us meet at the caf\u00e9 near the station.\n"),
    dict(subject="Large newsletter", sender="News <news@example.com>",
         date="Sun, 21 Jan 2024 09:00:00 +0000", body="padding words here\n" * 1200),
    dict(subject="Report attached", sender="Frank <frank@example.com>",
         date="Mon, 22 Jan 2024 09:00:00 +0000", msgid="<report-4711@mail.example.com>",
         ctype='multipart/mixed; boundary="zz"',
         body=("--zz\nContent-Type: text/plain\n\nSee the attached file.\n"
               "--zz\nContent-Type: text/csv; name=\"report.csv\"\n"
               "Content-Disposition: attachment; filename=\"report.csv\"\n\n"
               "walrus,total\n1,42\n--zz--\n")),
]
for _i in range(26):
    SEARCH_MSGS.append(dict(subject="Filler message %02d" % _i, sender="Dave <dave@example.com>",
                            date="Mon, %02d Apr 2024 10:00:00 +0000" % (_i + 1),
                            body="common filler words okapi number %d\n" % _i))


@pytest.fixture(scope="module")
def searchable(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    a = new_arca(root / "inst")
    src = root / "src"
    a.raw = {}
    for i, kw in enumerate(SEARCH_MSGS):
        data = make_msg(**kw)
        a.raw[kw["subject"]] = data
        write(src / ("%02d.eml" % i), data)
    s = a.import_(src, "alice", "Inbox")
    assert (s["archived"], s["errors"]) == (len(SEARCH_MSGS), 0), s
    s = a.import_(src / "01.eml", "bob", "Work")
    return a


def test_search_subject_word(searchable):
    assert subjects_of(search(searchable, "budget")) == ["Budget approval needed",
                                                         "Quarterly budget review"]


def test_search_from(searchable):
    assert subjects_of(search(searchable, "from:alice@example.com")) == [
        "Holiday photos", "Quarterly budget review"]
    assert subjects_of(search(searchable, "from:carol")) == ["Budget approval needed"]


def test_search_subject_field(searchable):
    assert subjects_of(search(searchable, "subject:lunch")) == ["Lunch on Friday"]
    # "giraffe" is in bodies only
    assert subjects_of(search(searchable, "subject:giraffe")) == []


def test_search_phrase(searchable):
    assert subjects_of(search(searchable, '"usual place"')) == ["Lunch on Friday"]
    assert subjects_of(search(searchable, '"place usual"')) == []


def test_search_or_not(searchable):
    assert subjects_of(search(searchable, "zebra OR giraffe")) == [
        "Budget approval needed", "Lunch on Friday", "Quarterly budget review"]
    assert subjects_of(search(searchable, "zebra NOT giraffe")) == ["Quarterly budget review"]
    assert subjects_of(search(searchable, "zebra -giraffe")) == ["Quarterly budget review"]
    assert subjects_of(search(searchable, "(lunch OR holiday) -photos")) == ["Lunch on Friday"]


def test_search_dates(searchable):
    assert subjects_of(search(searchable, "budget after:2024-02-01")) == ["Budget approval needed"]
    assert subjects_of(search(searchable, "budget before:2024-02-01")) == ["Quarterly budget review"]
    # after: inclusive, before: exclusive
    assert subjects_of(search(searchable, "after:2024-01-15 before:2024-01-16")) == [
        "Quarterly budget review"]
    assert subjects_of(search(searchable, "from:alice before:2024-01-01")) == ["Holiday photos"]


def test_search_prefix_and_accents(searchable):
    assert subjects_of(search(searchable, "budg*")) == ["Budget approval needed",
                                                        "Quarterly budget review"]
    assert subjects_of(search(searchable, "quarterl*")) == ["Quarterly budget review"]
    # RFC 2047 subject decoded; accents folded both ways
    assert subjects_of(search(searchable, "cafe")) == ["Caf\u00e9 meeting"]
    assert subjects_of(search(searchable, "caf\u00e9")) == ["Caf\u00e9 meeting"]
    assert subjects_of(search(searchable, "subject:cafe")) == ["Caf\u00e9 meeting"]


def test_search_size_attachment_messageid_folder(searchable):
    assert subjects_of(search(searchable, "larger:10k")) == ["Large newsletter"]
    assert subjects_of(search(searchable, "budget smaller:10k")) == [
        "Budget approval needed", "Quarterly budget review"]
    assert subjects_of(search(searchable, "has:attachment")) == ["Report attached"]
    assert subjects_of(search(searchable, "filename:report")) == ["Report attached"]
    assert subjects_of(search(searchable, "attachment:walrus")) == ["Report attached"]
    assert subjects_of(search(searchable, "message-id:report-4711@mail.example.com")) == [
        "Report attached"]
    assert subjects_of(search(searchable, "folder:Work")) == ["Lunch on Friday"]
    assert subjects_of(search(searchable, "lunch folder:Inbox", "--archive", "alice")) == [
        "Lunch on Friday"]


def test_search_archive_scope(searchable):
    hits = search(searchable, "lunch", "--archive", "bob")
    assert subjects_of(hits) == ["Lunch on Friday"] and hits[0]["folders"] == ["bob/Work"], hits
    assert subjects_of(search(searchable, "budget", "--archive", "bob")) == []
    assert subjects_of(search(searchable, "archive:bob")) == ["Lunch on Friday"]


def test_search_newest_first(searchable):
    hits = search(searchable, "okapi", "--per-page", "50")
    assert [h["subject"] for h in hits] == ["Filler message %02d" % i for i in range(25, -1, -1)]


def test_search_paging(searchable):
    pages = [search(searchable, "okapi", "--per-page", "10", "--page", str(n)) for n in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [10, 10, 6, 0], [len(p) for p in pages]
    all_hits = search(searchable, "okapi", "--per-page", "50")
    assert sum((ids_of(p) for p in pages), []) == ids_of(all_hits)
    assert len(search(searchable, "okapi")) == 26  # default 50 per page


def test_search_relevance(searchable):
    hits = search(searchable, "budget", "--relevance")
    assert [h["subject"] for h in hits] == ["Budget approval needed", "Quarterly budget review"], hits


def test_search_json_fields(searchable):
    hits = search(searchable, "giraffe", "--archive", "alice")
    assert len(hits) == 2, hits
    for h in hits:
        for k in ("id", "date", "from", "subject", "folders", "snippet", "size"):
            assert k in h, "hit lacks %r: %r" % (k, h)
        assert ID_RE.match(h["id"]), h
        assert h["folders"] == ["alice/Inbox"], h
        assert h["size"] == len(searchable.raw[h["subject"]]), h
        assert "giraffe" in h["snippet"].lower(), h
        assert searchable.get(h["id"]).stdout == searchable.raw[h["subject"]]
    by = {h["subject"]: h for h in hits}
    assert "bob@example.org" in by["Lunch on Friday"]["from"], by
    date = by["Lunch on Friday"]["date"]
    assert date == 1708430400 or str(date).startswith("2024-02-20"), by


def test_search_one_hit_per_message(searchable):
    """The lunch message is in alice/Inbox and bob/Work: a whole-instance search lists it once
    with both folders."""
    hits = search(searchable, "lunch")
    assert len(hits) == 1, hits
    assert sorted(hits[0]["folders"]) == ["alice/Inbox", "bob/Work"], hits


def test_export_query(searchable, tmp_path):
    got = searchable.export_eml(tmp_path / "q", "--query", "subject:lunch")
    assert list(got.values()) == [sha256(searchable.raw["Lunch on Friday"])], got


def test_stats_json(searchable):
    st = searchable.json("stats")
    assert isinstance(st, dict) and isinstance(st.get("stores"), list), st
    assert isinstance(st.get("archives"), list), st
    store = st["stores"][0]
    keys = " ".join(store)
    for part in ("messages", "raw", "stored", "meta", "index"):
        assert part in keys, "store stats lack a %r field: %r" % (part, store)
    assert store["messages"] == len(SEARCH_MSGS), store
    raw_key = [k for k in store if "raw" in k][0]
    assert store[raw_key] == sum(len(d) for d in searchable.raw.values()), store
    for k, v in store.items():
        if k != "id" and ("bytes" in k or k in ("messages",)):
            assert isinstance(v, int) and v > 0, (k, store)
    arch = {a.get("name", a.get("archive")): a for a in st["archives"]}
    assert set(arch) == {"alice", "bob"}, st["archives"]
    assert arch["alice"]["messages"] == len(SEARCH_MSGS) and arch["bob"]["messages"] == 1, arch


def test_archives_json(searchable):
    data = searchable.json("archives")
    if isinstance(data, dict):
        data = data.get("archives")
    got = sorted((a.get("name", a.get("archive")), a["messages"]) for a in data)
    assert got == [("alice", len(SEARCH_MSGS)), ("bob", 1)], data


def test_search_corpus_subjects(corpus, corpus_instance, corpus_export):
    """A distinctive corpus subject finds its message (and the hit's id gets those bytes)."""
    from conftest import distinctive_subjects
    for subject, path in distinctive_subjects(corpus, 5):
        hits = search(corpus_instance, 'subject:"%s"' % subject)
        match = [h for h in hits if h["subject"] == subject]
        assert len(match) == 1, "subject:%r -> %r" % (subject, [h["subject"] for h in hits])
        assert corpus_export[match[0]["id"]] == corpus.sha_by_file[path]
        hits = search(corpus_instance, subject.lower(), "--per-page", "200")
        assert match[0]["id"] in ids_of(hits), "words %r do not find %s" % (subject, path.name)


def test_rebuild_index(searchable, tmp_path):
    inst = searchable.copy(tmp_path / "copy")
    before = subjects_of(search(inst, "zebra OR okapi", "--per-page", "100"))
    inst.run("rebuild-index")
    assert subjects_of(search(inst, "zebra OR okapi", "--per-page", "100")) == before


def test_snippet_from_attachment_text(arca, tmp_path):
    """A word found only in a text attachment is marked in a snippet of that attachment."""
    msg = (b"From: a@example.com\nTo: b@example.org\nSubject: report attached\n"
           b"Date: Mon, 03 Jun 2024 10:00:00 +0000\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=\"zz\"\n\n"
           b"--zz\nContent-Type: text/plain\n\nPlease see the attachment.\n"
           b"--zz\nContent-Type: text/plain; name=\"notes.txt\"\n"
           b"Content-Disposition: attachment; filename=\"notes.txt\"\n\n"
           b"Quarterly figures mention the zebrafinch project twice.\n--zz--\n")
    (tmp_path / "m.eml").write_bytes(msg)
    arca.import_(tmp_path / "m.eml", "alice", "Inbox")
    hits = search(arca, "zebrafinch")
    assert len(hits) == 1, hits
    assert "[[zebrafinch]]" in hits[0]["snippet"], hits[0]

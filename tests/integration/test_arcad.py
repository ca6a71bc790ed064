"""The instance process itself: clean SIGTERM (BYE to sessions, exit 0), SIGHUP re-reads the
config file, reads keep answering while a big import runs (IDLE announces the new messages),
and no secret ever reaches the log."""
import imaplib
import signal
import subprocess
import threading
import time

import pytest

from arcad import Arcad, create_user
from conftest import Arca, describe

PASSWORD = "s3cret-Pass-phrase!"


def new_instance(tmp_path):
    arca = Arca(tmp_path / "inst", tmp_path / "inst.key")
    arca.init()
    create_user(arca, "alice", PASSWORD)
    return arca


def test_sigterm_says_bye_and_exits_zero(tmp_path):
    d = Arcad(new_instance(tmp_path), tmp_path).start()
    c = d.login("alice", PASSWORD)
    raw = d.raw()
    assert raw.read_line().startswith(b"* OK")
    d.proc.send_signal(signal.SIGTERM)
    assert raw.read_line().startswith(b"* BYE"), "an idle session gets BYE on shutdown"
    assert d.proc.wait(timeout=30) == 0, d.log_text()
    with pytest.raises((imaplib.IMAP4.abort, OSError, EOFError)):
        c.noop()
        c.noop()


def test_sighup_rereads_the_config_file(tmp_path):
    arca = new_instance(tmp_path)
    conf = tmp_path / "arcad.conf"
    conf.write_text("# limits\nmax-user-conns = 1\nlog-level = info\n")
    d = Arcad(arca, tmp_path, extra=["--config", str(conf)]).start()
    try:
        first = d.login("alice", PASSWORD)
        second = d.imaps()
        with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):
            second.login("alice", PASSWORD)
        conf.write_text("max-user-conns = 3\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "configuration reloaded" not in d.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "configuration reloaded" in d.log_text()
        third = d.login("alice", PASSWORD)
        third.logout()
        # a broken file keeps the old settings and says so
        conf.write_text("max-user-conns = lots\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "keeping the old settings" not in d.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "keeping the old settings" in d.log_text()
        first.logout()
    finally:
        d.stop()


def test_reads_answer_during_a_big_import_and_idle_sees_it(tmp_path, corpus):
    arca = new_instance(tmp_path)
    arca.import_(corpus.files[0], "alice", "INBOX")
    d = Arcad(arca, tmp_path, extra=["--idle-poll", "1"]).start()
    try:
        idler = d.raw()
        idler.read_line()
        idler.cmd("a", "LOGIN alice \"%s\"" % PASSWORD)
        assert b"* 1 EXISTS" in idler.cmd("b", "EXAMINE INBOX")
        idler.send("c IDLE\r\n")
        assert idler.read_line().startswith(b"+ ")
        imp = subprocess.Popen(arca.cmd("import", "--archive", "alice", "--folder", "INBOX",
                                        "--batch", "200", "--quiet", str(corpus.dir)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        answered = 0
        try:
            while imp.poll() is None:
                c = d.login("alice", PASSWORD)
                typ, data = c.select("INBOX", readonly=True)
                assert typ == "OK", data
                n = int(data[0])
                typ, data = c.fetch("%d" % n, "(UID RFC822.SIZE ENVELOPE)")
                assert typ == "OK", data
                typ, data = c.search(None, "SUBJECT", "the")
                assert typ == "OK", data
                c.logout()
                answered += 1
        finally:
            out, err = imp.communicate(timeout=900)
        assert imp.returncode == 0, describe(imp)
        assert answered >= 2, "sessions must keep answering while the import runs"
        # IDLE announced the growth (polling every second for other processes' imports)
        seen = 0
        deadline = time.time() + 30
        while seen < len(corpus.shas) and time.time() < deadline:
            line = idler.read_line()
            if line.endswith(b" EXISTS\r\n"):
                seen = int(line.split()[1])
        assert seen == arca.folder_count("alice", "INBOX"), seen
        idler.send("DONE\r\n")
        assert idler.read_response("c").endswith(b"c OK IDLE terminated\r\n")
    finally:
        d.stop()
    log = d.log_path.read_text(errors="replace")
    assert PASSWORD not in log, "a password reached the log"
    assert "login user=alice" in log

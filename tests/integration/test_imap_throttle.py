"""Login throttling over real IMAP connections (docs/imap.md "Logins"): wrong passwords from
one address make that address wait longer and longer, parallel connections included; the right
password from another address still logs in at once; a nonexistent user gets the same reply,
the same delays and the same work as a wrong password.

The daemon runs with --login-penalty-scale 5 (delays 0.1, 0.2, 0.4, 0.75 s instead of 2, 4, 8,
15 s) so that 50 attempts fit in the test suite; one test checks the real schedule's first step.
The delays the server applied are read from its log ("login delayed N ms"), which states them;
wall-clock times are only checked from below (an attempt cannot be answered before its delay)."""
import re
import socket
import ssl
import statistics
import threading
import time

import pytest

from arcad import Arcad, create_user
from conftest import Arca

FAIL = b"NO [AUTHENTICATIONFAILED] Authentication failed."
SCALE = 5  # percent
CAP_MS = 15000 * SCALE // 100


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("throttle")
    arca = Arca(tmp / "inst", tmp / "inst.key")
    arca.init()
    create_user(arca, "alice", "right-pw")
    d = Arcad(arca, tmp, extra=["--login-penalty-scale", str(SCALE), "--max-user-conns", "100"]).start()
    yield d
    d.stop()


class Conn:
    """A TLS IMAP connection from a chosen loopback source address."""

    def __init__(self, server, source):
        raw = socket.create_connection(("127.0.0.1", server.imaps_port), timeout=120,
                                       source_address=(source, 0))
        self.s = server.ssl_context().wrap_socket(raw, server_hostname="localhost")
        self.f = self.s.makefile("rb")
        self.n = 0
        assert self.f.readline().startswith(b"* OK")

    def login(self, user, password):
        """(tagged reply without the tag, seconds from sending to the reply)."""
        self.n += 1
        tag = b"t%d" % self.n
        t0 = time.monotonic()
        self.s.sendall(tag + b" LOGIN " + user.encode() + b" " + password.encode() + b"\r\n")
        while True:
            line = self.f.readline()
            assert line, "connection closed during LOGIN"
            if line.startswith(tag + b" "):
                return line[len(tag) + 1:].rstrip(b"\r\n"), time.monotonic() - t0

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def logged_delays(server, peer):
    return [int(m.group(1)) for m in re.finditer(
        r"login delayed (\d+) ms \(throttle\) user=\S+ peer=%s\n" % re.escape(peer), server.log_text(10**7))]


def test_real_schedule_first_steps(tmp_path):
    """Without scaling: the first failure is free, after the second an attempt waits 2 s, after
    the third 4 s."""
    arca = Arca(tmp_path / "inst", tmp_path / "inst.key")
    arca.init()
    create_user(arca, "alice", "right-pw")
    d = Arcad(arca, tmp_path).start()
    try:
        c = Conn(d, "127.0.0.7")
        r1, t1 = c.login("alice", "wrong")
        r2, t2 = c.login("alice", "wrong")
        r3, t3 = c.login("alice", "wrong")
        r4, t4 = c.login("alice", "wrong")
        assert r1 == r2 == r3 == r4 == FAIL
        assert logged_delays(d, "127.0.0.7") == [2000, 4000]
        assert t3 >= 2.0 and t4 >= 4.0, (t1, t2, t3, t4)
        c.close()
    finally:
        d.stop()


def test_fifty_wrong_passwords_in_parallel_wait_longer_and_longer(server):
    attacker, user_addr = "127.0.0.2", "127.0.0.3"
    results = []
    lock = threading.Lock()
    start = time.monotonic()

    def attack(k):
        c = Conn(server, attacker)
        try:
            for _ in range(5):
                reply, took = c.login("alice", "guess-%d" % k)
                with lock:
                    results.append((time.monotonic() - start, took, reply))
        finally:
            c.close()

    threads = [threading.Thread(target=attack, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    # while the attack runs: the real user, from another address, logs in at once
    while True:
        with lock:
            if len(results) >= 20:
                break
        time.sleep(0.05)
    u = Conn(server, user_addr)
    reply, took = u.login("alice", "right-pw")
    assert reply.startswith(b"OK"), reply
    u.close()
    for t in threads:
        t.join()

    assert len(results) == 50
    assert all(r[2] == FAIL for r in results), {r[2] for r in results}
    assert logged_delays(server, user_addr) == [], "the user's own address must not be delayed"
    delays = logged_delays(server, attacker)
    # the first wave of 10 parallel attempts races the first answers; from then on every
    # attempt is delayed, and the delays grow because attempts queue behind each other
    assert len(delays) >= 35, delays
    assert max(delays) >= CAP_MS * 5, "parallel attempts must queue: %s" % delays
    assert statistics.mean(delays[-10:]) > statistics.mean(delays[:10]) * 2, delays
    answers = sorted(r[0] for r in results)
    # late answers come one at a time, on average at least the (scaled) 15 s cap apart (each
    # is scheduled its delay after the previous one; the password check's own time jitters),
    # so 50 guesses take far longer than 50 unthrottled checks
    span = answers[49] - answers[25]
    assert span >= 24 * CAP_MS / 1000 * 0.9, answers


def test_nonexistent_user_looks_like_wrong_password(server):
    """Same reply bytes, same delays, same work (one Argon2id verification each)."""
    wrong = Conn(server, "127.0.0.4")
    ghost = Conn(server, "127.0.0.5")
    rw, rg, tw, tg = [], [], [], []
    for _ in range(4):
        r, t = wrong.login("alice", "not-it")
        rw.append(r)
        tw.append(t)
        r, t = ghost.login("nobody-here", "not-it")
        rg.append(r)
        tg.append(t)
    wrong.close()
    ghost.close()
    assert rw == rg == [FAIL] * 4
    assert logged_delays(server, "127.0.0.4") == logged_delays(server, "127.0.0.5")
    # the first attempt is undelayed on both: its time is the password check itself; a
    # missing user must not answer faster (a dummy hash is verified). Loose bounds: the two
    # run interleaved on the same machine, so load hits both alike.
    fresh_w, fresh_g = [], []
    for i in range(6):
        c = Conn(server, "127.0.1.%d" % (10 + i))
        fresh_w.append(c.login("alice", "not-it")[1])
        c.close()
        c = Conn(server, "127.0.2.%d" % (10 + i))
        fresh_g.append(c.login("nobody-here", "not-it")[1])
        c.close()
    ratio = statistics.median(fresh_g) / statistics.median(fresh_w)
    assert 0.33 < ratio < 3.0, (fresh_w, fresh_g)

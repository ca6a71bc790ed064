"""Starting and stopping the real `arcad instance` daemon for black-box tests, and IMAP
client helpers (Python's imaplib over TLS with the instance's self-signed certificate)."""
import imaplib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from conftest import ARCACTL, BUILD, Arca, describe

ARCAD = BUILD / "src" / "server" / "arcad"
FOLDERS = ["INBOX", "Sent", "Projects/Alpha", "Spam", "Old/2002"]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_user(arca, name, password, *flags):
    p = subprocess.run(arca.cmd("user", "create", name, "--password-stdin", *flags),
                       input=(password + "\n").encode(), capture_output=True, timeout=120)
    assert p.returncode == 0, "user create failed\n" + describe(p)


class Arcad:
    """One running `arcad instance`: TCP IMAP (STARTTLS) and IMAPS on free loopback ports,
    HTTP on a free port, the Unix sockets in <base>/run."""

    def __init__(self, arca, workdir, extra=()):
        self.arca = arca
        self.workdir = Path(workdir)
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.http_port = free_port()
        self.extra = list(extra)
        self.proc = None
        self.log_path = self.workdir / "arcad.log"

    def args(self):
        return [str(ARCAD), "instance", "--base", str(self.arca.base), "--key-file",
                str(self.arca.key_file), "--imap", "127.0.0.1:%d" % self.imap_port,
                "--imaps", "127.0.0.1:%d" % self.imaps_port,
                "--http", "127.0.0.1:%d" % self.http_port, *self.extra]

    def start(self, timeout=30):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=self.log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("arcad exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            try:
                with socket.create_connection(("127.0.0.1", self.imaps_port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("arcad did not start listening:\n" + self.log_text())

    def log_text(self, tail=6000):
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, timeout=30):
        """SIGTERM; the daemon must exit 0."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("arcad did not stop on SIGTERM:\n" + self.log_text())
        self.log.close()
        assert rc == 0, "arcad exited %s on SIGTERM:\n%s" % (rc, self.log_text())
        return rc

    def cert(self):
        return str(self.arca.base / "tls" / "cert.pem")

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.cert())
        ctx.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
        return ctx

    def imaps(self):
        """A new imaplib connection over implicit TLS (not logged in)."""
        return imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=self.ssl_context(),
                                 timeout=60)

    def imap_plain(self):
        return imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=60)

    def login(self, user, password):
        c = self.imaps()
        c.login(user, password)
        return c

    def raw(self, tls=True):
        """A raw socket (TLS by default) for byte-exact transcripts."""
        s = socket.create_connection(("127.0.0.1", self.imaps_port if tls else self.imap_port),
                                     timeout=60)
        if tls:
            s = self.ssl_context().wrap_socket(s, server_hostname="localhost")
        return RawImap(s)


class RawImap:
    """Line-level IMAP client for transcripts: send exact bytes, read exact responses."""

    def __init__(self, sock):
        self.sock = sock
        self._buf = bytearray()  # received; unread from _pos (linear time for large responses)
        self._pos = 0

    @property
    def buf(self):
        """What was received and not read yet."""
        return bytes(self._buf[self._pos:])

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _recv(self, what):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed %s; buffered %r" % (what, self.buf[:200]))
        if self._pos > (1 << 20):
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += chunk

    def read_line(self):
        while True:
            nl = self._buf.find(b"\n", self._pos)
            if nl >= 0:
                line = bytes(self._buf[self._pos:nl + 1])
                self._pos = nl + 1
                return line
            self._recv("before a line ended")

    def read_exact(self, n):
        while len(self._buf) - self._pos < n:
            self._recv("inside %d bytes" % n)
        out = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return out

    def read_response(self, tag):
        """Everything up to and including the tagged line (literals included)."""
        out = bytearray()
        while True:
            line = self.read_line()
            out += line
            stripped = line.rstrip(b"\r\n")
            # a literal at the end of the line: read its bytes, then the rest of the line
            while stripped.endswith(b"}") and b"{" in stripped:
                n = int(stripped[stripped.rindex(b"{") + 1:-1].rstrip(b"+"))
                out += self.read_exact(n)
                line = self.read_line()
                out += line
                stripped = line.rstrip(b"\r\n")
            if line.startswith(tag.encode() + b" "):
                return bytes(out)

    def cmd(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.read_response(tag)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def make_instance(tmp, corpus_files=None, folders=FOLDERS):
    """An instance with users alice (the archive, corpus spread over FOLDERS), bob (no access
    to alice), carol (read access to alice's Projects), root (admin). Returns the Arca."""
    arca = Arca(Path(tmp) / "inst", Path(tmp) / "inst.key")
    arca.init()
    create_user(arca, "alice", "alice-pw-1")
    create_user(arca, "bob", "bob-pw-1")
    create_user(arca, "carol", "carol-pw-1")
    create_user(arca, "root", "root-pw-1", "--admin")
    if corpus_files:
        parts = [Path(tmp) / ("part%d" % i) for i in range(len(folders))]
        for d in parts:
            d.mkdir()
        for i, f in enumerate(sorted(corpus_files)):
            os.symlink(f, parts[i % len(folders)] / Path(f).name)
        for d, folder in zip(parts, folders):
            arca.import_(d, "alice", folder)
            shutil.rmtree(d)
    return arca


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def imap_server(tmp_path_factory, corpus):
    """One running arcad over an instance holding the corpus in alice's 5 folders.
    READ-ONLY for tests: nothing may change the instance (tests that do need their own)."""
    tmp = tmp_path_factory.mktemp("imap-server")
    arca = make_instance(tmp, corpus.files)
    d = Arcad(arca, tmp).start()
    d.corpus = corpus
    d.users = {"alice": "alice-pw-1", "bob": "bob-pw-1", "carol": "carol-pw-1", "root": "root-pw-1"}
    # the shas each folder should hold: the corpus round-robin over FOLDERS, duplicates once
    expect = {f: set() for f in FOLDERS}
    for i, f in enumerate(sorted(corpus.files)):
        expect[FOLDERS[i % len(FOLDERS)]].add(corpus.sha_by_file[f])
    d.expect = expect
    yield d
    d.stop()

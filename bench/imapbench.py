"""Shared by bench/imap.py and bench/imap-conns.py: a minimal IMAP client over TLS that
consumes responses fully and counts bytes (no parsing beyond lines and literals, no disk
writes), creating an instance and starting arcad, CPU and memory readings from /proc."""
import os
import socket
import ssl
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssl_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
    return ctx


class ImapError(Exception):
    pass


class Client:
    """One IMAPS connection. cmd() sends a command and reads everything up to its tagged line,
    skipping literals without copying them anywhere; it returns (tagged line, bytes received,
    untagged responses, the untagged lines when keep=True)."""

    RECV = 1 << 20

    def __init__(self, port, ctx, timeout=600):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.n = 0
        greeting = self._line()
        if not greeting.startswith(b"* OK"):
            raise ImapError("greeting: %r" % greeting[:200])

    def tls(self):
        return "%s %s" % (self.sock.version(), self.sock.cipher()[0])

    def _recv(self):
        chunk = self.sock.recv(self.RECV)
        if not chunk:
            raise ImapError("connection closed by the server")
        return chunk

    def _line(self):
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
                return line
            self.buf += self._recv()

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def cmd(self, text, keep=False):
        self.n += 1
        tag = "b%d" % self.n
        self.send("%s %s\r\n" % (tag, text))
        return self.read_response(tag, keep)

    def read_response(self, tag, keep=False):
        tagb = tag.encode() + b" "
        buf, pos = self.buf, 0
        total = 0
        count = 0
        cont = False          # the next line continues a response after a literal
        lines = []
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                buf = buf[pos:] + self._recv()
                pos = 0
                continue
            line = buf[pos:nl + 1]
            pos = nl + 1
            total += len(line)
            if not cont:
                if line.startswith(tagb):
                    self.buf = buf[pos:]
                    if not line[len(tagb):].startswith(b"OK"):
                        raise ImapError("%s: %r" % (tag, line[:300]))
                    return line, total, count, lines
                count += 1
            if keep:
                lines.append(line)
            if line.endswith(b"}\r\n") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1:-3].rstrip(b"+"))
                total += n
                avail = len(buf) - pos
                if avail >= n:
                    pos += n
                else:
                    need = n - avail
                    buf, pos = b"", 0
                    while need > 0:
                        chunk = self._recv()
                        if len(chunk) > need:
                            buf = chunk[need:]
                            need = 0
                        else:
                            need -= len(chunk)
                cont = True
            else:
                cont = False

    def login(self, user, password):
        self.cmd('LOGIN "%s" "%s"' % (user, password))

    def close(self):
        try:
            self.cmd("LOGOUT")
        except (ImapError, OSError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------ /proc readings

def proc_children():
    """{ppid: [pid, ...]} of all processes."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids = proc_children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid, include_children=True):
    """CPU time (user+sys) of a process and, with include_children, of all its live
    descendants plus the children they have reaped (cutime/cstime): a Dovecot imap process that
    exits between two readings moves from "live" into its parent's cutime, so the sum stays
    consistent."""
    total = 0
    for p in (tree(pid) if include_children else [pid]):
        try:
            st = open("/proc/%d/stat" % p).read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        # fields after the comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        total += int(f[11]) + int(f[12])
        if include_children:
            total += int(f[13]) + int(f[14])
    return total / CLK_TCK


def status_kb(pid, key):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


# ------------------------------------------------------------------ arcad

def arca_instance(arcactl, base, key, user, password, log):
    """A fresh instance with one user (the user's archive is created by `user create`)."""
    def run(*args, stdin=None):
        p = subprocess.run([arcactl, "--base", base, "--key-file", key, *args], input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600)
        log.write(p.stdout + p.stderr)
        log.flush()
        if p.returncode != 0:
            raise SystemExit("arcactl %s failed:\n%s" % (" ".join(args), (p.stdout + p.stderr).decode(errors="replace")[-3000:]))
        return p.stdout
    run("init")
    run("user", "create", user, "--password-stdin", stdin=(password + "\n").encode())
    return run


def wait_port(port, proc, what, logpath, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("%s exited with %s:\n%s" % (what, proc.returncode, tail(logpath)))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("%s did not start listening:\n%s" % (what, tail(logpath)))


def tail(path, n=4000):
    try:
        return open(path, errors="replace").read()[-n:]
    except OSError:
        return ""


def start_arcad(arcad, base, key, port, logpath, extra=()):
    log = open(logpath, "ab")
    args = [arcad, "instance", "--base", base, "--key-file", key,
            "--imaps", "127.0.0.1:%d" % port, "--http", "127.0.0.1:%d" % free_port(), *extra]
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    wait_port(port, proc, "arcad", logpath)
    return proc, args


def stop(proc, timeout=30):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

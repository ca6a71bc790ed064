#!/usr/bin/env python3
"""Idle IMAP connections: the resident memory that N concurrent, authenticated, idle TLS IMAP
sessions add to one `arcad instance` process. See bench/README.md ("bench/imap-conns.sh").

    bench/imap-conns.py --arcad BIN --arcactl BIN [--corpus DIR] [--conns N] [--concurrency C]
                        [--settle S] [--out DIR] [--no-results] [--env K=V ...]

Phases, with VmRSS and RssAnon of arcad read from /proc/<pid>/status after each (and sampled
every second while the phase runs, for the peak):
  0. arcad started, one connection logged in, selected INBOX and logged out (first-use
     allocations: TLS, SQLite, the user table), then a pause: the baseline;
  1. N TLS connections opened and logged in (LOGIN), C at a time (each login verifies an
     Argon2id hash of 64 MiB: the measurement is about idle sessions, not about N
     simultaneous hashes), all left idle; measured after the last login and a pause;
  2. SELECT INBOX on every connection (the INBOX holds the corpus), idle again, pause;
  3. every connection logged out and closed, pause;
  4. (when gdb is installed) malloc_trim(0) called in arcad through gdb: what it returns was
     free memory that malloc kept, what remains is in use (or fragmented).
The goal (issue): 1,000 idle authenticated sessions add at most 64 MB (phase 1 - phase 0)."""
import argparse
import asyncio
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402
import imapbench as I  # noqa: E402

USER, PASSWORD = "bench", "bench-pw-1"
GOAL_MB = 64


def log(*a):
    print("imap-conns.py:", *a, file=sys.stderr, flush=True)


class Sampler:
    """Peak VmRSS / RssAnon of a process, sampled every `every` seconds in a thread."""

    def __init__(self, pid, every=0.5):
        self.pid, self.every = pid, every
        self.peak = {"VmRSS": 0, "RssAnon": 0}
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_ev.is_set():
            for k in self.peak:
                v = I.status_kb(self.pid, k) or 0
                self.peak[k] = max(self.peak[k], v)
            self.stop_ev.wait(self.every)

    def reset(self):
        self.peak = {"VmRSS": 0, "RssAnon": 0}

    def stop(self):
        self.stop_ev.set()
        self.t.join()


def reading(pid):
    r = {k: I.status_kb(pid, k) for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads")}
    try:
        r["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        r["fds"] = None
    r["load"] = I.loadavg()
    return r


class Conn:
    def __init__(self, reader, writer):
        self.r, self.w, self.n = reader, writer, 0

    async def cmd(self, text):
        self.n += 1
        tag = "c%d" % self.n
        self.w.write(("%s %s\r\n" % (tag, text)).encode())
        await self.w.drain()
        while True:
            line = await self.r.readline()
            if not line:
                raise I.ImapError("connection closed during %s" % text.split()[0])
            if line.startswith(tag.encode() + b" "):
                if not line[len(tag) + 1:].startswith(b"OK"):
                    raise I.ImapError("%s: %r" % (text.split()[0], line[:200]))
                return line
            if line.rstrip(b"\r\n").endswith(b"}"):
                raise I.ImapError("unexpected literal in the response to %s" % text.split()[0])


async def open_login(port, ctx, sem, conns, times):
    async with sem:
        t0 = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                       server_hostname="localhost", limit=1 << 20)
        greet = await reader.readline()
        if not greet.startswith(b"* OK"):
            raise I.ImapError("greeting %r" % greet[:100])
        c = Conn(reader, writer)
        await c.cmd('LOGIN "%s" "%s"' % (USER, PASSWORD))
        times.append(time.perf_counter() - t0)
        conns.append(c)


async def each(conns, sem, text):
    async def one(c):
        async with sem:
            await c.cmd(text)
    await asyncio.gather(*(one(c) for c in conns))


async def close_all(conns, sem):
    async def one(c):
        async with sem:
            try:
                await c.cmd("LOGOUT")
            except (I.ImapError, OSError):
                pass
            c.w.close()
            try:
                await c.w.wait_closed()
            except (OSError, Exception):  # noqa: BLE001  (ssl shutdown races are fine here)
                pass
    await asyncio.gather(*(one(c) for c in conns))


def mib(kb):
    return kb / 1024.0


def main():
    for sig in (signal.SIGTERM, signal.SIGHUP):   # stop arcad (finally:) when killed
        signal.signal(sig, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("--arcad", required=True)
    ap.add_argument("--arcactl", required=True)
    ap.add_argument("--corpus", help="a directory of .eml files imported into the INBOX")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "imap-conns"))
    ap.add_argument("--env", action="append", default=[], help="K=V for arcad's environment")
    ap.add_argument("--section", default="imap-conns")
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument("--command", default="bench/imap-conns.sh")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.conns * 2 + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile < a.conns + 64:
        raise SystemExit("RLIMIT_NOFILE %d is too low for %d connections (ulimit -n)" % (nofile, a.conns))

    out = os.path.abspath(a.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    started, machine = B.now(), B.machine()
    base, key = os.path.join(out, "arca-base"), os.path.join(out, "arca.key")
    alog = open(os.path.join(out, "arcactl.log"), "ab")
    run = I.arca_instance(a.arcactl, base, key, USER, PASSWORD, alog)
    nmsgs = 0
    if a.corpus:
        log("importing %s into the INBOX" % a.corpus)
        run("import", "--archive", USER, "--folder", "INBOX", "--quiet", a.corpus)
        nmsgs = sum(1 for f in os.listdir(a.corpus) if f.endswith(".eml"))
    env = dict(os.environ)
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    port = I.free_port()
    extra = ["--max-user-conns", str(a.conns + 100), "--log-level", "warn"]
    logpath = os.path.join(out, "arcad.log")
    logf = open(logpath, "ab")
    args = [a.arcad, "instance", "--base", base, "--key-file", key,
            "--imaps", "127.0.0.1:%d" % port, "--http", "127.0.0.1:%d" % I.free_port(), *extra]
    proc = subprocess.Popen(args, stdout=logf, stderr=logf, env=env)
    I.wait_port(port, proc, "arcad", logpath)
    pid = proc.pid
    ctx = I.ssl_context(os.path.join(base, "tls", "cert.pem"))
    R, peaks, durations = {}, {}, {}
    samp = Sampler(pid)

    async def scenario():
        sem = asyncio.Semaphore(a.concurrency)
        # 0. warm-up connection, then the baseline
        warm = []
        await open_login(port, ctx, sem, warm, [])
        await warm[0].cmd("SELECT INBOX")
        await close_all(warm, sem)
        await asyncio.sleep(a.settle)
        R["0 baseline"] = reading(pid)
        samp.reset()
        # 1. N logins, C at a time
        conns, times = [], []
        t0 = time.perf_counter()
        await asyncio.gather(*(open_login(port, ctx, sem, conns, times) for _ in range(a.conns)))
        durations["login"] = time.perf_counter() - t0
        durations["login_each"] = statistics.median(times)
        R["1 logged in, just after"] = reading(pid)
        await asyncio.sleep(a.settle)
        R["1 logged in, idle"] = reading(pid)
        peaks["1"] = dict(samp.peak)
        samp.reset()
        # 2. SELECT INBOX everywhere
        t0 = time.perf_counter()
        await each(conns, asyncio.Semaphore(max(a.concurrency, 32)), "SELECT INBOX")
        durations["select"] = time.perf_counter() - t0
        await asyncio.sleep(a.settle)
        R["2 INBOX selected, idle"] = reading(pid)
        peaks["2"] = dict(samp.peak)
        samp.reset()
        # 3. close
        t0 = time.perf_counter()
        await close_all(conns, asyncio.Semaphore(64))
        durations["close"] = time.perf_counter() - t0
        await asyncio.sleep(a.settle)
        R["3 all closed"] = reading(pid)
        peaks["3"] = dict(samp.peak)

    try:
        log("%d connections, logins %d at a time (load %s)" % (a.conns, a.concurrency, I.loadavg()))
        asyncio.run(scenario())
        # 4. leak or malloc's retention? Ask glibc to give back what it can (gdb attaches for a
        #    moment and calls malloc_trim(0) in arcad); what remains after that is in use
        if shutil.which("gdb"):
            p = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            if p.returncode == 0 and b"$1 = " in p.stdout:
                time.sleep(1)
                R["4 after malloc_trim(0)"] = reading(pid)
            else:
                log("gdb could not call malloc_trim: %s" % p.stdout.decode(errors="replace")[-500:])
    finally:
        samp.stop()
        I.stop(proc)
    rc = proc.returncode

    b = R["0 baseline"]
    idle = R["1 logged in, idle"]
    sel = R["2 INBOX selected, idle"]
    closed = R["3 all closed"]
    trimmed = R.get("4 after malloc_trim(0)")
    d_rss = idle["VmRSS"] - b["VmRSS"]
    d_anon = idle["RssAnon"] - b["RssAnon"]
    met = d_rss * 1024 <= GOAL_MB * 1e6
    envtxt = " ".join(a.env) if a.env else "default malloc settings"
    L = []
    L.append("## IMAP: %d idle TLS sessions on one arcad (%s)" % (a.conns, envtxt))
    L.append("")
    L.append("- date: %s; revision: %s" % (started, B.revision(a.arcad)))
    L.append("- machine: %s" % machine)
    L.append("- command: `%s`" % a.command)
    L.append("- arcad: `arcad instance --imaps 127.0.0.1:PORT --max-user-conns %d --log-level warn` "
             "(4 workers), environment: %s; user `%s`, whose INBOX holds %d messages" % (
                 a.conns + 100, envtxt, USER, nmsgs))
    L.append("- client: Python asyncio + ssl (TLS 1.3), one process; LOGIN %d at a time "
             "(each verifies an Argon2id hash, m=64 MiB, t=2): %d logins in %.1f s (median %.0f ms "
             "each, queueing included); SELECT INBOX on all in %.1f s; LOGOUT of all in %.1f s; "
             "readings %.0f s after each phase" % (
                 a.concurrency, a.conns, durations["login"], durations["login_each"] * 1e3,
                 durations["select"], durations["close"], a.settle))
    L.append("")
    L.append("| phase | VmRSS | RssAnon | RssFile | threads | fds | Δ VmRSS vs baseline | per session | load |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in R.items():
        d = r["VmRSS"] - b["VmRSS"]
        per = "%.1f KiB" % (d / a.conns) if name[0] in "12" else ""
        L.append("| %s | %.1f MiB | %.1f MiB | %.1f MiB | %s | %s | %+.1f MiB | %s | %s |" % (
            name, mib(r["VmRSS"]), mib(r["RssAnon"]), mib(r["RssFile"]), r["Threads"], r["fds"],
            mib(d), per, r["load"].split()[0]))
    L.append("")
    L.append("Peak while the phase ran (sampled every 0.5 s): logins VmRSS %.1f MiB / RssAnon %.1f MiB; "
             "SELECT %.1f / %.1f MiB; close %.1f / %.1f MiB. VmHWM at the end %.1f MiB." % (
                 mib(peaks["1"]["VmRSS"]), mib(peaks["1"]["RssAnon"]), mib(peaks["2"]["VmRSS"]),
                 mib(peaks["2"]["RssAnon"]), mib(peaks["3"]["VmRSS"]), mib(peaks["3"]["RssAnon"]),
                 mib(closed["VmHWM"])))
    L.append("")
    L.append("Goal (%d idle authenticated TLS sessions add at most %d MB): Δ VmRSS %.1f MB "
             "(%.1f MiB, RssAnon %+.1f MiB), %.1f KiB per session: **%s**%s." % (
                 a.conns, GOAL_MB, d_rss * 1024 / 1e6, mib(d_rss), mib(d_anon), d_rss / a.conns,
                 "met" if met else "not met",
                 "" if a.conns == 1000 else " (measured with %d, not 1,000)" % a.conns))
    L.append("After SELECT INBOX on every session: Δ %.1f MiB (%.1f KiB per session). After "
             "closing all: Δ %+.1f MiB (memory malloc keeps in its arenas or free lists)%s." % (
                 mib(sel["VmRSS"] - b["VmRSS"]), (sel["VmRSS"] - b["VmRSS"]) / a.conns,
                 mib(closed["VmRSS"] - b["VmRSS"]),
                 "; arcad exited %s on SIGTERM" % rc if rc not in (0, None) else ""))
    if trimmed:
        L.append("After `malloc_trim(0)` in arcad (gdb): Δ %+.1f MiB against the baseline: what "
                 "malloc_trim gives back was free memory kept by malloc, what stays is in use or "
                 "fragmented." % mib(trimmed["VmRSS"] - b["VmRSS"]))
    text = "\n".join(L) + "\n"
    print(text)
    with open(os.path.join(out, "section.md"), "w") as f:
        f.write(text)
    if not a.no_results:
        B.write_section(a.section, text)
        log("wrote the %s section of %s" % (a.section, B.RESULTS))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Helpers shared by the benchmark scripts: machine description, /usr/bin/time -v parsing,
and rewriting one section of bench/RESULTS.md.

    benchlib.py machine                 prints the machine line
    benchlib.py section NAME FILE       replaces section NAME of RESULTS.md by FILE's text
"""
import datetime
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "RESULTS.md")


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        load = "load average %s at start" % open("/proc/loadavg").read().split()[0]
    except OSError:
        load = ""
    return "%d CPUs (nproc), %s, %.1f GiB RAM, Linux %s; %s" % (
        os.cpu_count() or 0, cpu, mem / 2**30, platform.release(), load)


def revision(arcactl=None):
    """$BENCH_REVISION, else the text of ARCACTL.rev (a binary copied out of build/ with a note
    of what it was built from), else git HEAD (+ a note when src/ has uncommitted changes)."""
    if os.environ.get("BENCH_REVISION"):
        return os.environ["BENCH_REVISION"]
    if arcactl:
        try:
            return open(arcactl + ".rev").read().strip()
        except OSError:
            pass
    try:
        r = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True)
        rev = r.stdout.strip() if r.returncode == 0 else "no commit yet"
        d = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "../src"],
                           capture_output=True, text=True)
        if d.stdout.strip():
            rev += " (src/ has uncommitted changes)"
        return rev
    except OSError:
        return "unknown"


def now():
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def parse_time_v(path):
    """Figures of a `/usr/bin/time -v -o path` report: wall seconds, peak RSS bytes, cpu s."""
    out = {}
    try:
        text = open(path).read()
    except OSError:
        return out
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["rss"] = int(m.group(1)) * 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        secs = 0.0
        for part in m.group(1).split(":"):
            secs = secs * 60 + float(part)
        out["wall"] = secs
    for key, label in (("user", "User time (seconds)"), ("sys", "System time (seconds)")):
        m = re.search(re.escape(label) + r": ([\d.]+)", text)
        if m:
            out[key] = float(m.group(1))
    m = re.search(r"Exit status: (\d+)", text)
    if m:
        out["status"] = int(m.group(1))
    return out


def human(n):
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return ("%.0f %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1000


def write_section(name, body):
    """Replaces (or appends) the text between the markers of section NAME in RESULTS.md."""
    begin, end = "<!-- BEGIN %s -->" % name, "<!-- END %s -->" % name
    block = "%s\n%s\n%s" % (begin, body.rstrip("\n"), end)
    try:
        text = open(RESULTS).read()
    except FileNotFoundError:
        text = ("# Arca benchmark results\n\nWritten by the scripts in bench/ (see bench/README.md);"
                " each script rewrites its own section.\n")
    if begin in text and end in text:
        pre, rest = text.split(begin, 1)
        post = rest.split(end, 1)[1]
        text = pre + block + post
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(RESULTS + ".tmp", "w") as f:
        f.write(text)
    os.replace(RESULTS + ".tmp", RESULTS)


if __name__ == "__main__":
    if sys.argv[1:2] == ["machine"]:
        print(machine())
    elif sys.argv[1:2] == ["section"] and len(sys.argv) == 4:
        write_section(sys.argv[2], open(sys.argv[3]).read())
    else:
        sys.exit(__doc__)

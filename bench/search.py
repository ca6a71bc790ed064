#!/usr/bin/env python3
"""Times a fixed set of queries against an arca instance with `arcactl search-bench` (one process
per order, instance opened once) and writes p50/p95/p99 per query class (newest first and
--relevance) to bench/RESULTS.md. Normally run by bench/search.sh, which generates and imports
the corpus first.

Query words are chosen deterministically from gen-corpus.py's vocabulary by frequency rank
(rank 1 = most frequent; the generator samples words with P(rank r) ~ 1/r), the phrases from
its sentence pool for the given seed.

`arcactl search-bench` runs each line of a file --runs times and prints one JSON line per line
with the in-process latencies (50 hits per page, snippets included); it sorts runs_ms, so the
warm-up cannot be "the first run": every query is written twice in a row, and the first line's
runs are dropped. Page 1 is then fetched once with `arcactl search --json` (untimed) to check
that the snippets show a matched word.

Revision recorded: $BENCH_REVISION, else the text of ARCACTL.rev when that file exists (for a
binary copied out of build/), else `git rev-parse --short HEAD`.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_corpus",
                                                  os.path.join(HERE, "gen-corpus.py"))
    g = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g)
    return g


def queries(g, seed):
    vocab = g.vocabulary()

    def w(rank):
        return vocab[min(rank, len(vocab)) - 1]
    g.build_tables(seed)
    pool = g.T["pool"]
    rank = {word: r for r, word in enumerate(vocab)}
    phrases = []
    for s in pool:
        ws = s.rstrip(".?!,").lower().split()
        # a phrase of two not-too-common words, so that it is selective
        if len(ws) >= 3 and rank.get(ws[1], 0) >= 50 and rank.get(ws[2], 0) >= 50:
            phrases.append('"%s %s"' % (ws[1], ws[2]))
        if len(phrases) == 3:
            break
    n = len(vocab)
    return [
        ("1 word, common (rank 1-80)", [w(r) for r in (1, 2, 5, 12, 30, 80)]),
        ("1 word, medium (rank 400-6000)", [w(r) for r in (400, 1000, 2500, 6000)]),
        ("1 word, rare (rank 30k-%dk)" % (n // 1000),
         [w(r) for r in (30000, 70000, 120000, 160000, n)]),
        ("2 words, common+common", ["%s %s" % (w(a), w(b)) for a, b in ((1, 4), (8, 25), (50, 150))]),
        ("2 words, common+rare", ["%s %s" % (w(a), w(b))
                                  for a, b in ((3, 2000), (20, 50000), (100, 150000))]),
        ("2 words, rare+rare", ["%s %s" % (w(a), w(b)) for a, b in ((1500, 40000), (20000, 90000))]),
        ("phrase", phrases),
        ("field", ["from:alice", "subject:%s" % w(20), "from:smith %s" % w(50),
                   "has:attachment %s" % w(300), "%s after:2023-01-01 before:2023-07-01" % w(10)]),
        ("absent word (0 hits)", ["qqzzxxnotaword"]),
    ]


GOAL_MS = 50.0


def goal_class(cls):
    """The issue's goal covers one- and two-word queries (common and rare words)."""
    return cls.startswith("1 word") or cls.startswith("2 words")


def run(cmd, timeout=1800):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return time.perf_counter() - t, p


def pctl(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.4999)) - 1))
    return s[k]


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def search_bench(A, qlist, runs, extra, tmpdir, errors):
    """Runs qlist in `arcactl search-bench` processes; returns {query: (runs_ms, hits)} for the
    timed line of each query (each query is written twice, the first line is the warm-up). A
    failing query ends the process: it is recorded and the rest runs in a new process."""
    out = {}
    todo = list(qlist)
    while todo:
        path = os.path.join(tmpdir, "queries.txt")
        with open(path, "w") as f:
            for q in todo:
                f.write(q + "\n" + q + "\n")
        dt, p = run(A + ["search-bench"] + extra + ["--runs", str(runs), path])
        lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        done = len(lines) // 2
        for i in range(done):
            warm, timed = lines[2 * i], lines[2 * i + 1]
            assert timed["query"] == todo[i] == warm["query"], (timed["query"], todo[i])
            out[todo[i]] = (timed["runs_ms"], timed["hits"])
        if p.returncode == 0 and done == len(todo):
            break
        bad = todo[done]
        errors.append(("search-bench %s%s" % (" ".join(extra) + " " if extra else "", bad),
                       p.returncode, p.stderr.decode(errors="replace")[-300:]))
        out[bad] = ([], "error")
        todo = todo[done + 1:]
    return out


def snippet_check(A, q, extra, errors):
    """Page 1 once with `arcactl search --json` (untimed): hits and how many snippets show
    a matched word as [[word]]."""
    dt, p = run(A + ["search", "--json"] + extra + [q])
    if p.returncode != 0:
        errors.append(("search --json %s%s" % (" ".join(extra) + " " if extra else "", q),
                       p.returncode, p.stderr.decode(errors="replace")[-300:]))
        return None
    try:
        hl = json.loads(p.stdout).get("hits", [])
    except ValueError as e:
        errors.append((q, "bad JSON", str(e)))
        return None
    marked = sum(1 for h in hl if "[[" in (h.get("snippet") or ""))
    return len(hl), marked


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arcactl", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--manifest")
    ap.add_argument("--import", dest="imp")
    ap.add_argument("--import-time")
    ap.add_argument("--stats")
    ap.add_argument("--du")
    ap.add_argument("--rss-anon", help="file with the peak anonymous RSS of the import, bytes")
    ap.add_argument("--import-load", help="file of /proc/loadavg samples taken during the import")
    ap.add_argument("--command", default="bench/search.py")
    ap.add_argument("--no-results", action="store_true")
    a = ap.parse_args()

    import tempfile
    A = [a.arcactl, "--base", a.base, "--key-file", a.key_file]
    g = load_generator()
    qs = queries(g, a.seed)
    allq = [q for cls, ql in qs for q in ql]
    errors = []
    rev = B.revision(a.arcactl)

    # process + instance open, for reference (not part of the query figures)
    open_ts = []
    for i in range(6):
        dt, p = run(A + ["archives", "--json"])
        if i:
            open_ts.append(dt)

    orders = (("newest", []), ("relevance", ["--relevance"]))
    timed, loads, checks = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for order, extra in orders:
            l0, t0 = loadavg(), time.time()
            timed[order] = search_bench(A, allq, a.runs, extra, tmp, errors)
            loads[order] = (l0, loadavg(), time.time() - t0)
            for q in allq:
                ts, hits = timed[order][q]
                print("%-9s %-45s hits=%-5s median %.1f ms max %.1f ms" % (
                    order, q[:45], hits, statistics.median(ts) if ts else float("nan"),
                    max(ts) if ts else float("nan")), file=sys.stderr)
        for order, extra in orders:
            for q in allq:
                checks[(order, q)] = snippet_check(A, q, extra, errors)

    # report
    def load_json(path):
        try:
            return json.load(open(path)) if path else None
        except (OSError, ValueError):
            return None
    man = load_json(a.manifest) or {}
    imp = load_json(a.imp) or {}
    it = B.parse_time_v(a.import_time) if a.import_time else {}
    stats = load_json(a.stats)
    du = None
    try:
        du = int(open(a.du).read().split()[0]) if a.du else None
    except (OSError, ValueError):
        pass
    ms = lambda x: "%.1f" % x
    L = []
    n = man.get("count", "?")
    L.append("## Search: %s generated messages in one archive" % (
        "{:,}".format(n) if isinstance(n, int) else n))
    L.append("")
    L.append("- date: %s; revision measured: %s" % (B.now(), rev))
    L.append("- machine: %s" % B.machine())
    L.append("- command: `%s`" % a.command)
    if man:
        L.append("- corpus: gen-corpus.py --count %s --avg-size %s --seed %s --format mbox: %s, "
                 "avg %s B, p50 %s B, p99 %s B, %s duplicates; generated at %s msgs/s" % (
                     man.get("count"), man.get("avg_size_requested"), man.get("seed"),
                     B.human(man.get("bytes", 0)), man.get("avg_size"), man.get("size_p50"),
                     man.get("size_p99"), man.get("duplicates"), man.get("msgs_per_s")))
    if imp or it:
        cnt = (imp.get("archived") or 0) + (imp.get("duplicates") or 0)
        wall = it.get("wall")
        L.append("- import (`arcactl import --format mbox`, one process): %s messages (archived %s, "
                 "duplicates %s, errors %s) in %s = **%s msgs/s**, %s; peak RSS %s; CPU %s" % (
                     cnt, imp.get("archived"), imp.get("duplicates"), imp.get("errors"),
                     "%.0f s" % wall if wall else "?",
                     "%.0f" % (cnt / wall) if wall else "?",
                     "%.1f MB/s" % (man.get("bytes", 0) / 1e6 / wall) if wall and man else "",
                     B.human(it["rss"]) if "rss" in it else "?",
                     "%.0f s user + %.0f s sys" % (it.get("user", 0), it.get("sys", 0))))
    try:
        anon = int(open(a.rss_anon).read().split()[0]) if a.rss_anon else None
    except (OSError, ValueError, IndexError):
        anon = None
    if anon:
        L.append("- import memory: peak anonymous RSS %s (sampled each second); time -v's peak RSS "
                 "above also counts the pages of the mmap()ed mbox file" % B.human(anon))
    try:
        samples = [float(l.split()[1]) for l in open(a.import_load) if l.strip()] \
            if a.import_load else []
    except (OSError, ValueError, IndexError):
        samples = []
    if samples:
        L.append("- load during the import (1-min load average, %d samples): mean %.2f, min %.2f, "
                 "max %.2f (2 CPUs; the import itself is ~1)" % (
                     len(samples), sum(samples) / len(samples), min(samples), max(samples)))
    if du:
        L.append("- instance on disk (du): %s (%.0f%% of raw)" % (
            B.human(du), 100.0 * du / man["bytes"] if man.get("bytes") else 0))
    tot = stats.get("total") if isinstance(stats, dict) else None
    if tot:
        raw = tot.get("raw_bytes") or 0
        part = lambda k: "%s (%.0f%% of raw)" % (B.human(tot.get(k, 0)),
                                                 100.0 * tot.get(k, 0) / raw if raw else 0)
        L.append("- `arcactl stats`: %s unique messages, %s raw; content %s, metadata %s, "
                 "index %s" % ("{:,}".format(tot.get("messages", 0)), B.human(raw),
                               part("stored_bytes"), part("meta_bytes"), part("index_bytes")))
    L.append("- `arcactl archives --json` (process start, key unwrapping, opening the instance, "
             "message counts; not part of the figures below): median %.0f ms over %d runs" % (
                 1000 * statistics.median(open_ts), len(open_ts)))
    L.append("- timing: `arcactl search-bench [--relevance] --runs %d` (one process per order, "
             "instance opened once; 50 hits per page with snippets, newest first or relevance); "
             "each query once as a warm-up (%d runs, dropped), then %d timed runs; page cache warm. "
             "Latencies in ms, in-process, nearest-rank percentiles over all timed runs of all "
             "queries of a class." % (a.runs, a.runs, a.runs))
    for order in ("newest", "relevance"):
        l0, l1, secs = loads[order]
        L.append("- load averages (1/5/15 min) around the %s run (%.0f s): %s at start, %s at end"
                 % (order, secs, l0, l1))
    L.append("")
    L.append("| query class | queries | newest first p50 | p95 | p99 | relevance p50 | p95 | p99 |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")

    def class_ts(order, pred):
        return [t for cls, ql in qs if pred(cls) for q in ql for t in timed[order][q][0]]
    rows = [(cls, len(ql), (lambda c: lambda x: x == c)(cls)) for cls, ql in qs]
    rows.append(("**1–2 words, all (goal: p99 ≤ %.0f ms newest first)**" % GOAL_MS,
                 sum(len(ql) for cls, ql in qs if goal_class(cls)), goal_class))
    for label, nq, pred in rows:
        row = [label, str(nq)]
        for order in ("newest", "relevance"):
            ts = class_ts(order, pred)
            row += [ms(pctl(ts, 50)), ms(pctl(ts, 95)), ms(pctl(ts, 99))]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    gts = class_ts("newest", goal_class)
    worst = max(((pctl(class_ts("newest", (lambda c: lambda x: x == c)(cls)), 99), cls)
                 for cls, ql in qs if goal_class(cls)))
    L.append("Goal (p99 ≤ %.0f ms on one- and two-word queries, newest first, 50 hits with "
             "snippets): p99 over all %d timed runs %.1f ms, worst class %.1f ms (%s): **%s**." % (
                 GOAL_MS, len(gts), pctl(gts, 99), worst[0], worst[1],
                 "met" if worst[0] <= GOAL_MS and pctl(gts, 99) <= GOAL_MS else "missed"))
    L.append("")
    L.append("<details><summary>per query (median and max ms of the timed runs; hits on page 1, "
             "(k marked) when only k snippets show a matched word as [[word]])</summary>")
    L.append("")
    L.append("| class | query | newest median | max | hits | relevance median | max | hits |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")

    def hits_s(order, q):
        h = timed[order][q][1]
        c = checks.get((order, q))
        if c and h not in ("error",) and c[0] and c[1] < c[0]:
            return "%s (%d marked)" % (h, c[1])
        return str(h)
    for cls, qlist in qs:
        for q in qlist:
            cells = [cls, "`%s`" % q.replace("|", "\\|")]
            for order in ("newest", "relevance"):
                ts = timed[order][q][0]
                cells += [ms(statistics.median(ts)) if ts else "-", ms(max(ts)) if ts else "-",
                          hits_s(order, q)]
            L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L.append("</details>")
    if errors:
        L.append("")
        L.append("Errors:")
        L.append("")
        seen = set()
        for q, rc, err in errors:
            if q in seen:
                continue
            seen.add(q)
            L.append("- `arcactl %s` -> %s: `%s`" % (q, rc, err.strip().replace("\n", " ")))
    text = "\n".join(L) + "\n"
    print(text)
    if not a.no_results:
        B.write_section("search-%s" % n, text)
        print("search.py: wrote the search-%s section of %s" % (n, B.RESULTS), file=sys.stderr)


if __name__ == "__main__":
    main()

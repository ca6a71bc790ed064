#!/usr/bin/env python3
"""Times a fixed set of queries against an arca instance with `arcactl search --json` and
writes p50/p95/p99 per query class (newest first and --relevance) to bench/RESULTS.md.
Normally run by bench/search.sh, which generates and imports the corpus first.

Query words are chosen deterministically from gen-corpus.py's vocabulary by frequency rank
(rank 1 = most frequent; the generator samples words with P(rank r) ~ 1/r), the phrases from
its sentence pool for the given seed.

Each query is run in its own arcactl process (arcactl has no multi-query mode), so every
figure includes process start, key unwrapping and opening the databases: the "baseline"
rows (a command that opens the instance, and a query for a word that is not in the corpus)
show that fixed cost.
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
    ]


def run(cmd, timeout=300):
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
    ap.add_argument("--command", default="bench/search.py")
    ap.add_argument("--no-results", action="store_true")
    a = ap.parse_args()

    A = [a.arcactl, "--base", a.base, "--key-file", a.key_file]
    g = load_generator()
    qs = queries(g, a.seed)
    errors = []

    # baselines: fixed per-process cost
    base_rows = []
    for label, cmd in (("`arcactl archives --json` (open instance)", A + ["archives", "--json"]),
                       ("search for an absent word (0 hits)", A + ["search", "--json", "qqzzxxnotaword"])):
        run(cmd)
        ts = []
        for _ in range(max(a.runs, 5)):
            dt, p = run(cmd)
            if p.returncode != 0:
                errors.append((" ".join(cmd[5:]), p.returncode, p.stderr.decode(errors="replace")[:300]))
            ts.append(dt)
        base_rows.append((label, ts))

    results = []   # (class, query, order, times, hits)
    for cls, qlist in qs:
        for q in qlist:
            for order, extra in (("newest", []), ("relevance", ["--relevance"])):
                cmd = A + ["search", "--json"] + extra + [q]
                dt, p = run(cmd)                 # warm-up, untimed
                ts, hits = [], None
                for _ in range(a.runs):
                    dt, p = run(cmd)
                    ts.append(dt)
                if p.returncode != 0:
                    errors.append((" ".join(["search", "--json"] + extra + [q]), p.returncode,
                                   p.stderr.decode(errors="replace")[:300]))
                else:
                    try:
                        out = json.loads(p.stdout)
                        hl = out.get("hits", [])
                        marked = sum(1 for h in hl if "[[" in (h.get("snippet") or ""))
                        hits = len(hl)
                        if hits and marked < hits:
                            # snippets that do not show a matched word
                            hits = "%d (%d marked)" % (hits, marked)
                    except ValueError as e:
                        errors.append((q, "bad JSON", str(e)))
                results.append((cls, q, order, ts, hits))
                print("%-28s %-9s %-45s hits=%-4s median %.1f ms" % (
                    cls[:28], order, q[:45], hits, 1000 * statistics.median(ts)),
                    file=sys.stderr)

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
    ms = lambda x: "%.1f" % (1000 * x)
    L = []
    n = man.get("count", "?")
    L.append("## Search: %s generated messages in one archive" % (
        "{:,}".format(n) if isinstance(n, int) else n))
    L.append("")
    L.append("- date: %s; revision: %s" % (B.now(), B.revision()))
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
    if du:
        L.append("- instance on disk (du): %s (%.0f%% of raw)" % (
            B.human(du), 100.0 * du / man["bytes"] if man.get("bytes") else 0))
    L.append("- timing: one arcactl process per query (no multi-query mode yet), %d timed runs "
             "per query and order after one warm-up run; page cache warm. Latencies in ms, "
             "nearest-rank percentiles over all runs of all queries of a class." % a.runs)
    L.append("")
    L.append("Fixed per-process cost (included in every figure below):")
    L.append("")
    L.append("| baseline | p50 | p95 | p99 |")
    L.append("| --- | --- | --- | --- |")
    for label, ts in base_rows:
        L.append("| %s | %s | %s | %s |" % (label, ms(pctl(ts, 50)), ms(pctl(ts, 95)), ms(pctl(ts, 99))))
    L.append("")
    L.append("| query class | queries | newest first p50 | p95 | p99 | relevance p50 | p95 | p99 |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for cls, qlist in qs:
        row = ["%s" % cls, str(len(qlist))]
        for order in ("newest", "relevance"):
            ts = [t for c, q, o, tt, h in results if c == cls and o == order for t in tt]
            row += [ms(pctl(ts, 50)), ms(pctl(ts, 95)), ms(pctl(ts, 99))]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("<details><summary>per query (median ms; hits returned on page 1, (k marked) when only k snippets show a matched word as [[word]])</summary>")
    L.append("")
    L.append("| class | query | newest | hits | relevance | hits |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    for cls, qlist in qs:
        for q in qlist:
            r = {o: (tt, h) for c, qq, o, tt, h in results if c == cls and qq == q}
            L.append("| %s | `%s` | %s | %s | %s | %s |" % (
                cls, q.replace("|", "\\|"), ms(statistics.median(r["newest"][0])), r["newest"][1],
                ms(statistics.median(r["relevance"][0])), r["relevance"][1]))
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

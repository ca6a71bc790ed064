#!/usr/bin/env python3
"""Deterministic synthetic e-mail corpus generator for Arca's benchmarks.

    gen-corpus.py --count N --out PATH [--seed S] [--avg-size BYTES]
                  [--format maildir|eml|mbox] [--jobs J] [--quiet]

Python 3 standard library only. The same (count, seed, avg-size, format) always gives
byte-identical output, whatever --jobs is: message i is generated from its own RNG seeded
with (seed, i).

What a corpus contains (see bench/README.md):
  * one mailbox owner (Alice Example <alice@arca-bench.example>) and a folder tree: INBOX,
    Sent, Archive/<year>, Lists/<list>, Projects/<name>;
  * realistic header sets: 1-4 Received hops, Return-Path, Delivered-To, DKIM-Signature,
    Authentication-Results, Message-ID, Date spread over 2015-2024 (skewed to recent years,
    random time zones), From/To/Cc with display names, some RFC 2047-encoded non-ASCII
    (B and Q encodings, several charsets), In-Reply-To/References, List-Id, X-Mailer;
  * bodies: text/plain, multipart/alternative (text + html), multipart/mixed with
    attachments: small valid PDFs with text, office-like zip containers (docx/xlsx with
    XML text + binary media), images (png/jpeg/gif magic + random bytes), txt/csv;
  * charsets: us-ascii, utf-8, iso-8859-1, iso-8859-15, windows-1252, koi8-r, iso-2022-jp,
    gb2312 (bodies in the matching language, encoded with Python's codecs), with 7bit, 8bit,
    quoted-printable and base64 transfer encodings;
  * vocabulary: a fixed ranked word list (common English words, then 200,000 deterministic
    pseudo-words) sampled with a Zipf distribution (P(rank r) ~ 1/r), so that both very
    common and very rare words exist; vocabulary() gives the list in rank order (used by
    bench/search.py to pick query words by frequency rank);
  * duplicates: about 10% of the messages are byte-identical copies of an earlier message
    filed in another folder ("the same mail in several mailboxes");
  * sizes: log-normal around --avg-size (default 75,000 bytes, the reference product's sizing
    assumption); bigger messages carry attachments more often.

Output formats:
  maildir  PATH is a Maildir++ (cur/ new/ tmp/ for INBOX, .Sent/, .Archive.2019/, ...)
  eml      PATH is a directory tree, one <n>.eml per message (sub-directories = folders)
  mbox     PATH is one mboxrd file (all folders in one file)
A manifest PATH.json (next to PATH, not inside it) records the parameters and totals.
"""

import argparse
import base64
import binascii
import io
import json
import math
import multiprocessing
import os
import random
import sys
import time
import zipfile

GEN_VERSION = 1
VOCAB_SEED = 20240601          # the vocabulary is fixed: independent of --seed
N_PSEUDO = 200_000
POOL_SENTENCES = 100_000
DUP_RATE = 0.10
YEAR0, YEARS = 2015, 10
EPOCH0 = 1420070400            # 2015-01-01T00:00:00Z
SPAN = 3653 * 86400            # ten years

OWNER_NAME, OWNER_ADDR = "Alice Example", "alice@arca-bench.example"

COMMON_WORDS = """the of and to in a is that for it as was with be by on not he i this are or
his from at which but have an they you were her she there one all we their been has would
when who will more no if out so said what up its about into than them can only other new
some could time these two may then do first any my now such like our over man me even most
made after also did many before must through back years where much your way well down should
because each just those people how too little state good very make world still own see men
work long get here between both life being under never day same another know while last might
us great old year off come since against go came right used take three meeting report project
budget customer invoice contract review schedule team office order account payment service
support question answer please thanks regards attached document update release server network
data system price market product quarter sales board manager client delivery shipping""".split()

LANG_WORDS = {
    "de": "über straße größe müde schön für während äußerst grüße bitte danke rechnung "
          "besprechung vertrag lieferung kündigung frühjahr büro gemäß prüfung öffnung "
          "ähnlich zurück natürlich mädchen bäcker".split(),
    "fr": "été déjà très après réunion facture reçu élève fenêtre garçon français "
          "château hôtel où voilà crème bientôt première réponse équipe sécurité "
          "numéro prévu".split(),
    "es": "año niño mañana señor corazón información canción reunión teléfono "
          "dirección está también más después rápido pequeño útil factura pedido "
          "jamón".split(),
    "ru": "привет спасибо встреча документ счёт договор работа сегодня завтра вопрос "
          "ответ компания проект отчёт письмо неделя деньги система сервер клиент "
          "пожалуйста".split(),
    "ja": "こんにちは ありがとう 会議 資料 請求書 契約 確認 予定 報告 お願いします "
          "東京 大阪 来週 今日 担当者 ご連絡 よろしく 見積もり 添付 変更".split(),
    "zh": "你好 谢谢 会议 文件 发票 合同 确认 计划 报告 请 北京 上海 下周 今天 "
          "负责人 联系 附件 变更 价格 客户 服务器".split(),
}
# language -> [(charset, weight)]
LANG_CHARSETS = {
    "en": [("us-ascii", 5), ("utf-8", 3), ("iso-8859-1", 1), ("windows-1252", 1)],
    "de": [("iso-8859-1", 3), ("iso-8859-15", 2), ("windows-1252", 2), ("utf-8", 3)],
    "fr": [("iso-8859-15", 3), ("iso-8859-1", 2), ("windows-1252", 2), ("utf-8", 3)],
    "es": [("iso-8859-1", 3), ("windows-1252", 3), ("utf-8", 3)],
    "ru": [("koi8-r", 5), ("utf-8", 4), ("windows-1251", 1)],
    "ja": [("iso-2022-jp", 6), ("utf-8", 4)],
    "zh": [("gb2312", 6), ("utf-8", 4)],
}
LANG_WEIGHTS = [("en", 78), ("de", 6), ("fr", 5), ("es", 3), ("ru", 3), ("ja", 3), ("zh", 2)]

FIRST = """James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara
Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty
Mark Sandra Paul Ashley Steven Emily Andrew Donna Kevin Michelle Brian Carol George Amanda
Edward Melissa Peter Anna Oliver Sophie Lucas Emma Noah Mia""".split()
LAST = """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez
Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White
Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen
Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts""".split()
# (display name, preferred charset for RFC 2047)
INTL_NAMES = [
    ("José García", "iso-8859-1"), ("François Lefèvre", "iso-8859-1"),
    ("Jürgen Müller", "iso-8859-1"), ("Søren Kierkegård", "iso-8859-1"),
    ("Zoë Brontë", "windows-1252"), ("Renée Dubœuf", "iso-8859-15"),
    ("Łukasz Wiśniewski", "utf-8"), ("Dvořák Antonín", "utf-8"),
    ("Дмитрий Иванов", "koi8-r"), ("Ольга Смирнова", "koi8-r"),
    ("Ελένη Παπαδοπούλου", "utf-8"), ("田中 太郎", "iso-2022-jp"),
    ("佐藤 花子", "iso-2022-jp"), ("王伟", "gb2312"), ("李娜", "gb2312"),
    ("Ayşe Yılmaz", "utf-8"), ("Björn Ångström", "iso-8859-1"),
    ("Núria Puig", "iso-8859-15"), ("Ðorđe Petrović", "utf-8"), ("Kōji Ōta", "utf-8"),
]
DOMAINS = """example.com example.org example.net mail.example.de post.example.fr
corp.example.co.uk lists.example.org example.jp example.cn example.ru partner.example.com
vendor.example.net customer.example.biz""".split()
MAILERS = ["Microsoft Outlook 16.0", "Apple Mail (2.3445.104.11)",
           "Mozilla Thunderbird 102.4.2", "Roundcube Webmail/1.6.1",
           "Evolution 3.44.4", "Mutt/2.2.9", "K-9 Mail for Android", None, None]
LISTS = ["dev", "announce", "users", "security", "ops"]
PROJECTS = ["apollo", "zephyr", "hermes"]
DOW = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
B64CH = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
HEXCH = "0123456789abcdef"


def folders():
    """Fixed folder list: (path with '/' separators, weight)."""
    f = [("INBOX", 45), ("Sent", 15)]
    f += [("Archive/%d" % (YEAR0 + y), 2) for y in range(YEARS)]
    f += [("Lists/" + l, 3) for l in LISTS]
    f += [("Projects/" + p, 0.8) for p in PROJECTS]
    return f


def vocabulary():
    """The English vocabulary in rank order (rank 1 first): common words, then pseudo-words.
    Fixed: does not depend on --seed."""
    rng = random.Random(VOCAB_SEED)
    onset = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
             "w", "z", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "tr", "th"]
    nucleus = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"]
    coda = ["", "", "", "n", "r", "s", "l", "t", "m", "x", "nd", "st"]
    seen = set(COMMON_WORDS)
    words = []
    # Shorter pseudo-words get better ranks (Zipf's law of brevity), shuffled within a length.
    rnd = rng.random
    no, nn, nc = len(onset), len(nucleus), len(coda)
    for nsyl, quota in ((2, 30_000), (3, 90_000), (4, N_PSEUDO)):
        batch = []
        while len(words) + len(batch) < quota:
            w = "".join([onset[int(rnd() * no)] + nucleus[int(rnd() * nn)]
                         for _ in range(nsyl)]) + coda[int(rnd() * nc)]
            if w not in seen:
                seen.add(w)
                batch.append(w)
        rng.shuffle(batch)
        words += batch
    return COMMON_WORDS + words


def zipf_index(rnd, ln_n):
    """Zipf(s=1) rank (0-based) by inverse transform of the continuous 1/x law."""
    return int(math.exp(rnd() * ln_n)) - 1


# ---------------------------------------------------------------- shared tables (pre-fork)
T = {}


def build_tables(seed):
    vocab = vocabulary()
    n = len(vocab)
    ln_n = math.log(n + 1)
    rng = random.Random(seed * 7919 + 1)
    rnd = rng.random
    pool = []
    exp = math.exp
    ends = ".....?!"
    for _ in range(POOL_SENTENCES):
        k = 4 + int(rnd() * 9)               # 4..12 words
        ws = [vocab[int(exp(rnd() * ln_n)) - 1] for _ in range(k)]
        ws[0] = ws[0].capitalize()
        pool.append(" ".join(ws) + ends[int(rnd() * 7)])
    T.update(vocab=vocab, ln_n=ln_n, pool=pool, pool_n=len(pool),
             avg_sentence=sum(map(len, pool)) / len(pool) + 1)
    people = []
    prng = random.Random(VOCAB_SEED + 1)
    for k in range(3000):
        if prng.random() < 0.18:
            name, cs = INTL_NAMES[prng.randrange(len(INTL_NAMES))]
            local = "u%d" % k
        else:
            fn, ln = prng.choice(FIRST), prng.choice(LAST)
            name, cs = "%s %s" % (fn, ln), "us-ascii"
            local = "%s.%s%s" % (fn.lower(), ln.lower(), "" if k < 1000 else str(k))
        people.append((name, cs, "%s@%s" % (local, prng.choice(DOMAINS))))
    T["people"] = people
    T["folders"] = folders()
    fw, acc = [], 0.0
    for _, w in T["folders"]:
        acc += w
        fw.append(acc)
    T["folder_cum"] = fw
    for key, table in (("lang", LANG_WEIGHTS),):
        acc, cum = 0, []
        for _, w in table:
            acc += w
            cum.append(acc)
        T[key + "_cum"] = cum
    T["charset_cum"] = {}
    for lang, table in LANG_CHARSETS.items():
        acc, cum = 0, []
        for _, w in table:
            acc += w
            cum.append(acc)
        T["charset_cum"][lang] = cum


def pick_cum(rnd, cum):
    x = rnd() * cum[-1]
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


# ---------------------------------------------------------------- header helpers
def fmt_date(epoch, tz_min):
    t = time.gmtime(epoch + tz_min * 60)
    sign = "+" if tz_min >= 0 else "-"
    a = abs(tz_min)
    return "%s, %d %s %d %02d:%02d:%02d %s%02d%02d" % (
        DOW[t.tm_wday], t.tm_mday, MON[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min,
        t.tm_sec, sign, a // 60, a % 60)


def encode_words(text, charset, q):
    """RFC 2047 encoded-words for text (each word at most 75 characters)."""
    if charset in ("us-ascii",):
        return text
    out = []
    chunk = 10 if charset in ("utf-8", "iso-2022-jp", "gb2312") else 18
    for i in range(0, len(text), chunk):
        b = text[i:i + chunk].encode(charset)
        if q:
            e = binascii.b2a_qp(b, header=True).decode("ascii").replace("=\n", "")
            e = e.replace("?", "=3F").replace("\t", "=09")
            out.append("=?%s?Q?%s?=" % (charset.upper(), e))
        else:
            out.append("=?%s?B?%s?=" % (charset.upper(), base64.b64encode(b).decode("ascii")))
    return "\n ".join(out)


def addr(person, rnd):
    name, cs, a = person
    if cs == "us-ascii":
        if rnd() < 0.15:
            return a
        return '"%s" <%s>' % (name, a) if rnd() < 0.3 else "%s <%s>" % (name, a)
    try:
        name.encode(cs)
    except UnicodeEncodeError:
        cs = "utf-8"
    return "%s <%s>" % (encode_words(name, cs, rnd() < 0.3), a)


def b64_lines(data):
    """base64 with 76-character lines (like base64.encodebytes, faster)."""
    s = binascii.b2a_base64(data, newline=False)
    return b"\n".join([s[i:i + 76] for i in range(0, len(s), 76)]).decode("ascii") + "\n"


def rand_hex(rng, n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def rand_b64(rng, n):
    return base64.b64encode(rng.randbytes((n * 3 + 3) // 4)).decode("ascii")[:n]


def rand_ip(rnd):
    return "%d.%d.%d.%d" % (11 + int(rnd() * 200), int(rnd() * 256), int(rnd() * 256),
                            1 + int(rnd() * 254))


def fold_b64(s, first):
    lines, width = [], 76 - first
    while s:
        lines.append(s[:width])
        s = s[width:]
        width = 72
    return "\n\t".join(lines)


# ---------------------------------------------------------------- body helpers
def english_text(rng, nchars):
    """Paragraphs of pool sentences (one sentence per line) plus fresh Zipf words."""
    rnd = rng.random
    pool, pn = T["pool"], T["pool_n"]
    vocab, ln_n = T["vocab"], T["ln_n"]
    n = max(1, int(nchars / T["avg_sentence"]))
    lines = []
    for k in range(n):
        if k % 12 == 11:   # fresh words: the true Zipf tail beyond the sentence pool
            ws = [vocab[zipf_index(rnd, ln_n)] for _ in range(8)]
            lines.append(" ".join(ws) + ".")
        else:
            lines.append(pool[int(rnd() * pn)])
        if rnd() < 0.2:
            lines.append("")
    return "\n".join(lines) + "\n"


def foreign_text(rng, lang, nwords):
    ws = LANG_WORDS[lang]
    sep = "" if lang in ("ja", "zh") else " "
    punct = "。" if lang in ("ja", "zh") else "."
    lines, line = [], []
    for _ in range(nwords):
        line.append(rng.choice(ws))
        if len(line) >= 6 + int(rng.random() * 4):
            lines.append(sep.join(line) + punct)
            line = []
    if line:
        lines.append(sep.join(line) + punct)
    return "\n".join(lines) + "\n"


def html_of(text):
    paras = text.split("\n\n")
    parts = ["<html><head><meta http-equiv=\"Content-Type\" content=\"text/html\"></head>"
             "<body style=\"font-family:Calibri,sans-serif\">\n"]
    for p in paras:
        if p.strip():
            parts.append("<p>" + p.replace("\n", "<br>\n") + "</p>\n")
    parts.append("</body></html>\n")
    return "".join(parts)


def encode_body(text, charset, rnd, prefer_b64=False):
    """-> (transfer-encoding, encoded str)"""
    data = text.encode(charset, errors="replace")
    if charset in ("us-ascii", "iso-2022-jp"):
        return "7bit", data.decode("ascii")
    x = rnd()
    if prefer_b64 or charset in ("gb2312",) and x < 0.7 or x < 0.25:
        return "base64", b64_lines(data)
    if x < 0.75:
        return "quoted-printable", binascii.b2a_qp(data).decode("ascii")
    return "8bit", data.decode("latin-1")      # raw 8-bit bytes, carried through latin-1


# ---------------------------------------------------------------- attachments
def pdf_bytes(rng, size, words):
    """A small valid PDF with one page of text, padded to about size with a binary stream."""
    text = " ".join(words).replace("\\", "").replace("(", "").replace(")", "")
    lines = [text[i:i + 80] for i in range(0, len(text), 80)][:40]
    content = "BT /F1 11 Tf 50 780 Td 14 TL\n" + "".join(
        "(%s) '\n" % l.encode("ascii", "replace").decode() for l in lines) + "ET\n"
    pad = max(0, size - len(content) - 900)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content.encode() + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % pad + rng.randbytes(pad)
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offs = []
    for i, o in enumerate(objs, 1):
        offs.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offs:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1,
                                                                            xref)
    return bytes(out)


def office_bytes(rng, size, words, kind):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        dt = (2020, 1, 1, 0, 0, 0)

        def add(name, data, method):
            zi = zipfile.ZipInfo(name, dt)
            zi.compress_type = method
            z.writestr(zi, data)
        add("[Content_Types].xml", '<?xml version="1.0" encoding="UTF-8"?><Types xmlns='
            '"http://schemas.openxmlformats.org/package/2006/content-types"/>',
            zipfile.ZIP_DEFLATED)
        body = " ".join(words)
        if kind == "docx":
            add("word/document.xml", '<?xml version="1.0" encoding="UTF-8"?><w:document '
                'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                "<w:body><w:p><w:r><w:t>%s</w:t></w:r></w:p></w:body></w:document>" % body,
                zipfile.ZIP_DEFLATED)
        else:
            add("xl/sharedStrings.xml", '<?xml version="1.0" encoding="UTF-8"?><sst>%s</sst>'
                % "".join("<si><t>%s</t></si>" % w for w in words), zipfile.ZIP_DEFLATED)
        pad = max(0, size - 600 - len(body) // 3)
        add("word/media/image1.png" if kind == "docx" else "xl/media/image1.png",
            b"\x89PNG\r\n\x1a\n" + rng.randbytes(pad), zipfile.ZIP_STORED)
    return buf.getvalue()


def image_bytes(rng, size, kind):
    head = {"png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01",
            "gif": b"GIF89a"}[kind]
    tail = {"png": b"\x00\x00\x00\x00IEND\xaeB`\x82", "jpg": b"\xff\xd9", "gif": b";"}[kind]
    return head + rng.randbytes(max(16, size)) + tail


ATT_KINDS = [("pdf", 30), ("docx", 15), ("xlsx", 8), ("jpg", 20), ("png", 12), ("gif", 3),
             ("txt", 7), ("csv", 5)]
ATT_CUM = []
_acc = 0
for _k, _w in ATT_KINDS:
    _acc += _w
    ATT_CUM.append(_acc)
MIME_OF = {"pdf": "application/pdf",
           "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
           "jpg": "image/jpeg", "png": "image/png", "gif": "image/gif",
           "txt": "text/plain", "csv": "text/csv"}


def attachment(rng, size, boundary, subject_words):
    rnd = rng.random
    kind = ATT_KINDS[pick_cum(rnd, ATT_CUM)][0]
    vocab, ln_n = T["vocab"], T["ln_n"]
    nwords = min(400, 20 + size // 60)
    words = [vocab[zipf_index(rnd, ln_n)] for _ in range(nwords)]
    base = "_".join(subject_words[:3]) or "document"
    name = "%s_%d.%s" % (base, int(rnd() * 1000), kind)
    if kind == "pdf":
        data = pdf_bytes(rng, size, words)
    elif kind in ("docx", "xlsx"):
        data = office_bytes(rng, size, words, kind)
    elif kind in ("jpg", "png", "gif"):
        data = image_bytes(rng, size, kind)
    elif kind == "txt":
        data = english_text(rng, size).encode("ascii")
    else:
        rows = ["id,item,amount,date"]
        total = 0
        while total < size:
            rows.append("%d,%s,%d.%02d,20%02d-%02d-%02d" % (
                len(rows), vocab[zipf_index(rnd, ln_n)], int(rnd() * 9999), int(rnd() * 100),
                15 + int(rnd() * 10), 1 + int(rnd() * 12), 1 + int(rnd() * 28)))
            total += len(rows[-1]) + 2
        data = ("\r\n".join(rows) + "\r\n").encode("ascii")
    ctype = MIME_OF[kind]
    if kind in ("txt", "csv") and rnd() < 0.5:
        cte, payload = "quoted-printable", binascii.b2a_qp(data).decode("ascii")
    else:
        cte, payload = "base64", b64_lines(data)
    disp = "inline" if kind in ("jpg", "png", "gif") and rnd() < 0.3 else "attachment"
    extra = '; charset="us-ascii"' if kind in ("txt", "csv") else ""
    return ("--%s\nContent-Type: %s%s; name=\"%s\"\nContent-Transfer-Encoding: %s\n"
            "Content-Disposition: %s; filename=\"%s\"\n\n%s" % (
                boundary, ctype, extra, name, cte, disp, name, payload))


# ---------------------------------------------------------------- one message
def target_size(rnd, avg):
    # log-normal with mean avg; sigma grows with the average (big corpora have a long tail)
    sigma = 0.75 if avg < 15000 else 1.25
    # calibrated so that the achieved average (headers, MIME overhead, base64 expansion,
    # the 900-byte floor and the caps included) lands close to the requested one
    mu = math.log(avg * (0.89 if avg < 15000 else 1.05)) - sigma * sigma / 2
    u1, u2 = rnd() or 1e-12, rnd()
    z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
    return int(min(max(math.exp(mu + sigma * z), 900), 40 * avg, 25_000_000))


def message(seed, i, avg):
    """(folder index, epoch, bytes) of message i, ignoring duplication."""
    rng = random.Random((seed << 32) ^ (i * 2654435761) ^ 0x5bd1e995)
    rnd = rng.random
    people = T["people"]
    np_ = len(people)
    fidx = pick_cum(rnd, T["folder_cum"])
    folder = T["folders"][fidx][0]
    # dates: 2015..2024, skewed to recent years; Archive/<year> holds mail of that year
    if folder.startswith("Archive/"):
        year = int(folder[8:])
        epoch = EPOCH0 + int((year - YEAR0) * 365.25 * 86400 + rnd() * 365 * 86400)
    else:
        epoch = EPOCH0 + int((rnd() ** 0.7) * SPAN)
    tz = rng.choice((0, 0, 60, 120, -300, -240, -420, 330, 540, 480, 180, -180))
    size = target_size(rnd, avg)
    lang = LANG_WEIGHTS[pick_cum(rnd, T["lang_cum"])][0]
    charset = LANG_CHARSETS[lang][pick_cum(rnd, T["charset_cum"][lang])][0]

    owner = (OWNER_NAME, "us-ascii", OWNER_ADDR)
    sender = people[int(rnd() * np_)]
    if folder == "Sent":
        frm, to = owner, [people[int(rnd() * np_)] for _ in range(1 + int(rnd() ** 3 * 4))]
    else:
        frm, to = sender, [owner] + [people[int(rnd() * np_)] for _ in range(int(rnd() ** 3 * 3))]
    cc = [people[int(rnd() * np_)] for _ in range(int(rnd() ** 2 * 4))] if rnd() < 0.35 else []

    vocab, ln_n = T["vocab"], T["ln_n"]
    swords = [vocab[zipf_index(rnd, ln_n)] for _ in range(2 + int(rnd() * 7))]
    subject = " ".join(swords).capitalize()
    if lang != "en" and rnd() < 0.6:
        subject = foreign_text(rng, lang, 3).strip().rstrip(".。") + " " + subject
    reply = rnd() < 0.3
    if reply:
        subject = ("Re: " if rnd() < 0.8 else "AW: ") + subject
    try:
        subject.encode("ascii")
        subj_h = subject
    except UnicodeEncodeError:
        cs = charset if charset not in ("us-ascii",) else "utf-8"
        try:
            subject.encode(cs)
        except UnicodeEncodeError:
            cs = "utf-8"
        subj_h = encode_words(subject, cs, rnd() < 0.4)

    fdom = frm[2].split("@")[1]
    msgid = "<%s.%s@%s>" % (rand_hex(rng, 16), rand_hex(rng, 8), fdom)
    h = []
    h.append("Return-Path: <%s>" % frm[2])
    if folder != "Sent":
        h.append("Delivered-To: %s" % OWNER_ADDR)
        t = epoch + 2 + int(rnd() * 30)
        hops = 1 + int(rnd() * 3)
        for k in range(hops):
            qid = rand_hex(rng, 11).upper()
            if k == 0:
                h.append("Received: from mx%d.arca-bench.example (mx%d.arca-bench.example "
                         "[10.0.0.%d])\n\tby mail.arca-bench.example (Postfix) with ESMTPS id "
                         "%s\n\tfor <%s>; %s" % (k + 1, k + 1, 5 + k, qid, OWNER_ADDR,
                                                 fmt_date(t, 0)))
            else:
                ip = rand_ip(rnd)
                h.append("Received: from smtp%d.%s (smtp%d.%s [%s])\n\tby mx%d.arca-bench."
                         "example (Postfix) with ESMTPS id %s;\n\t%s" % (
                             k, fdom, k, fdom, ip, k, qid, fmt_date(t, tz)))
            t -= 1 + int(rnd() * 20)
        h.append("Authentication-Results: mail.arca-bench.example;\n\tdkim=pass header.d=%s "
                 "header.s=sel1;\n\tspf=pass smtp.mailfrom=%s" % (fdom, frm[2]))
    if rnd() < 0.6:
        h.append("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=sel1;\n\t"
                 "h=from:to:subject:date:message-id; bh=%s=;\n\tb=%s" % (
                     fdom, rand_b64(rng, 43), fold_b64(rand_b64(rng, 342) + "==",
                                                              4)))
    h.append("Message-ID: %s" % msgid)
    h.append("Date: %s" % fmt_date(epoch, tz))
    h.append("From: %s" % addr(frm, rnd))
    h.append("To: %s" % ",\n\t".join(addr(p, rnd) for p in to))
    if cc:
        h.append("Cc: %s" % ",\n\t".join(addr(p, rnd) for p in cc))
    h.append("Subject: %s" % subj_h)
    if reply:
        ref = "<%s@%s>" % (rand_hex(rng, 20), people[int(rnd() * np_)][2].split("@")[1])
        h.append("In-Reply-To: %s" % ref)
        h.append("References: %s" % ref)
    if folder.startswith("Lists/"):
        l = folder[6:]
        h.append("List-Id: %s discussion <%s.lists.example.org>" % (l.capitalize(), l))
        h.append("List-Unsubscribe: <mailto:%s-unsubscribe@lists.example.org>" % l)
        h.append("Precedence: list")
    mailer = MAILERS[int(rnd() * len(MAILERS))]
    if mailer:
        h.append(("X-Mailer: %s" if rnd() < 0.5 else "User-Agent: %s") % mailer)
    h.append("MIME-Version: 1.0")
    head_len = sum(map(len, h)) + len(h) + 120

    # body layout
    remaining = max(300, size - head_len)
    if remaining > 30000:
        p_att = 0.85
    elif remaining > 8000:
        p_att = 0.35
    else:
        p_att = 0.06
    n_att = 0
    if rnd() < p_att:
        n_att = 1 + (rnd() < 0.25) + (rnd() < 0.08)
    if n_att:
        text_chars = min(remaining * 0.5, 600 + rnd() * 5000)
        att_total = max(400, remaining - text_chars * (1.9 if rnd() < 0.5 else 1.0))
    else:
        text_chars = remaining
    alt = rnd() < 0.45
    if alt:
        text_chars /= 2.3
    if lang == "en":
        text = english_text(rng, text_chars)
    else:
        nf = 10 + int(rnd() * 40)
        text = foreign_text(rng, lang, nf) + "\n" + english_text(
            rng, max(50, text_chars - nf * 8))
    if reply:
        text += "\nOn %s, %s wrote:\n> %s" % (
            fmt_date(epoch - 86400, tz), sender[2], english_text(rng, 200).replace("\n", "\n> "))
    text += "\n-- \n%s\n" % frm[0]

    b = "----=_Part_%d_%s" % (i, rand_hex(rng, 10))
    ct_cs = charset

    def text_part(body, subtype):
        cte, enc = encode_body(body, ct_cs, rnd)
        return "Content-Type: text/%s; charset=\"%s\"\nContent-Transfer-Encoding: %s\n\n%s" % (
            subtype, ct_cs, cte, enc)

    if alt:
        ab = b + "_alt"
        alt_body = "Content-Type: multipart/alternative;\n\tboundary=\"%s\"\n\n--%s\n%s\n--%s\n%s\n--%s--\n" % (
            ab, ab, text_part(text, "plain"), ab, text_part(html_of(text), "html"), ab)
    else:
        alt_body = text_part(text, "plain")
    if n_att:
        parts = ["Content-Type: multipart/mixed;\n\tboundary=\"%s\"\n\nThis is a multi-part "
                 "message in MIME format.\n\n--%s\n%s\n" % (b, b, alt_body)]
        per = int(att_total * 0.74 / n_att)   # base64 inflates by 4/3 plus line breaks
        for _ in range(n_att):
            parts.append(attachment(rng, per, b, swords) + "\n")
        parts.append("--%s--\n" % b)
        body = "".join(parts)
    else:
        body = alt_body
    msg = "\n".join(h) + "\n" + body
    return fidx, epoch, msg.encode("latin-1")


def is_dup(seed, i):
    if i == 0:
        return None
    r = random.Random((seed << 40) ^ (i * 40503) ^ 0xD0D0)
    if r.random() >= DUP_RATE:
        return None
    back = 1 + int(r.random() ** 2 * min(i, 20000))
    return i - back


def source_of(seed, i):
    j = is_dup(seed, i)
    while j is not None:
        i = j
        j = is_dup(seed, i)
    return i


def full_message(seed, i, avg):
    """(folder index, epoch, bytes, is_duplicate) for message i."""
    src = source_of(seed, i)
    fidx, epoch, data = message(seed, src, avg)
    if src == i:
        return fidx, epoch, data, False
    # the copy goes to another folder
    r = random.Random((seed << 20) ^ i ^ 0xF01D)
    nf = len(T["folders"])
    other = (fidx + 1 + int(r.random() * (nf - 1))) % nf
    return other, epoch, data, True


# ---------------------------------------------------------------- output
def folder_dir(out, fmt, folder):
    if fmt == "maildir":
        if folder == "INBOX":
            return out
        return os.path.join(out, "." + folder.replace("/", "."))
    return os.path.join(out, *folder.split("/"))


def mboxrd_escape(data):
    if b"\nFrom " not in data and b"\n>" not in data and not data.startswith(b"From "):
        return data
    lines = data.split(b"\n")
    for k, line in enumerate(lines):
        s = line.lstrip(b">")
        if s.startswith(b"From "):
            lines[k] = b">" + line
    return b"\n".join(lines)


def work(args):
    out, fmt, seed, avg, lo, hi = args
    sizes = []
    dups = 0
    chunks = []
    for i in range(lo, hi):
        fidx, epoch, data, dup = full_message(seed, i, avg)
        dups += dup
        sizes.append(len(data))
        if fmt == "mbox":
            t = time.gmtime(epoch)
            chunks.append(b"From MAILER-DAEMON %s %s %2d %02d:%02d:%02d %d\n" % (
                DOW[t.tm_wday].encode(), MON[t.tm_mon - 1].encode(), t.tm_mday, t.tm_hour,
                t.tm_min, t.tm_sec, t.tm_year))
            chunks.append(mboxrd_escape(data))
            chunks.append(b"\n" if data.endswith(b"\n") else b"\n\n")
            continue
        d = folder_dir(out, fmt, T["folders"][fidx][0])
        if fmt == "maildir":
            name = os.path.join(d, "cur", "%d.M%dP0.arcagen:2,S" % (epoch, i))
        else:
            name = os.path.join(d, "%08d.eml" % i)
        with open(name, "wb") as f:
            f.write(data)
    return lo, hi, sizes, dups, b"".join(chunks) if fmt == "mbox" else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--avg-size", type=int, default=75000)
    ap.add_argument("--format", choices=("maildir", "eml", "mbox"), default="maildir")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    out = a.out.rstrip("/")
    t0 = time.time()
    build_tables(a.seed)
    t_tables = time.time() - t0
    if a.format == "mbox":
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        mbox = open(out, "wb")
    else:
        if os.path.exists(out) and os.listdir(out):
            sys.exit("gen-corpus: %s exists and is not empty" % out)
        for folder, _ in T["folders"]:
            d = folder_dir(out, a.format, folder)
            if a.format == "maildir":
                for s in ("cur", "new", "tmp"):
                    os.makedirs(os.path.join(d, s), exist_ok=True)
            else:
                os.makedirs(d, exist_ok=True)
    step = 500
    tasks = [(out, a.format, a.seed, a.avg_size, lo, min(lo + step, a.count))
             for lo in range(0, a.count, step)]
    sizes, dups, done = [], 0, 0
    t1 = time.time()
    last = t1
    if a.jobs > 1:
        pool = multiprocessing.get_context("fork").Pool(a.jobs)
        it = pool.imap(work, tasks)
    else:
        pool, it = None, map(work, tasks)
    for lo, hi, sz, d, blob in it:
        sizes += sz
        dups += d
        done = hi
        if blob is not None:
            mbox.write(blob)
        now = time.time()
        if not a.quiet and now - last > 2:
            last = now
            print("gen-corpus: %d/%d messages, %.0f msg/s" % (done, a.count, done / (now - t1)),
                  file=sys.stderr)
    if pool:
        pool.close()
        pool.join()
    if a.format == "mbox":
        mbox.close()
    secs = time.time() - t1
    total = sum(sizes)
    ss = sorted(sizes)

    def pct(p):
        return ss[min(len(ss) - 1, int(p / 100 * len(ss)))] if ss else 0
    manifest = {
        "generator_version": GEN_VERSION, "count": a.count, "seed": a.seed,
        "avg_size_requested": a.avg_size, "format": a.format, "bytes": total,
        "avg_size": round(total / max(1, len(sizes))), "duplicates": dups,
        "size_p50": pct(50), "size_p90": pct(90), "size_p99": pct(99),
        "size_max": ss[-1] if ss else 0, "seconds": round(secs, 2),
        "msgs_per_s": round(a.count / secs) if secs else None,
    }
    with open(out + ".json", "w") as f:
        json.dump(manifest, f, indent=1)
    if not a.quiet:
        print("gen-corpus: %d messages (%d duplicates), %.1f MB, avg %d B, p50 %d, p90 %d, "
              "p99 %d, max %d; %.1f s (+%.1f s tables) = %.0f msg/s, %.1f MB/s -> %s" % (
                  a.count, dups, total / 1e6, manifest["avg_size"], pct(50), pct(90), pct(99),
                  manifest["size_max"], secs, t_tables, a.count / max(secs, 1e-9),
                  total / 1e6 / max(secs, 1e-9), out), file=sys.stderr)


if __name__ == "__main__":
    main()

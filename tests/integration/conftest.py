"""Shared fixtures for the black-box integration tests of `arcactl` (docs/cli.md).

Environment:
  ARCA_BUILD   build directory (default <repo>/build); the binary is $ARCA_BUILD/src/cmd/arcactl
  ARCA_CORPUS  directory of the SpamAssassin corpus as .eml files (default: fetched with
               ../shared/corpus/fetch-spamassassin into /tmp/arca-corpus-sa)
"""
import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ARCA_BUILD", str(REPO / "build")))
ARCACTL = BUILD / "src" / "cmd" / "arcactl"
CORPUS_CACHE = Path(os.environ.get("ARCA_CORPUS_CACHE", "/tmp/arca-corpus-sa"))
CORPUS_COUNT = 6046

ID_RE = re.compile(r"^\d+:\d+$")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return sha256(f.read())


def tree_bytes(root):
    """(apparent bytes = sum of st_size, allocated bytes = st_blocks*512) of regular files."""
    apparent = allocated = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if not os.path.islink(os.path.join(dirpath, name)):
                apparent += st.st_size
                allocated += st.st_blocks * 512
    return apparent, allocated


def tree_listing(root):
    """{relative path: size} of every regular file under root (for failure messages)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = os.lstat(p).st_size
    return out


def decode(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def describe(p):
    return "command: %s\nexit: %s\nstdout: %s\nstderr: %s" % (
        " ".join(str(a) for a in p.args), p.returncode,
        decode(p.stdout)[-3000:], decode(p.stderr)[-3000:])


def make_msg(subject="Hello", body="Body text\n", sender="Alice Example <alice@example.com>",
             to="Bob Example <bob@example.org>", date="Mon, 03 Jun 2024 10:00:00 +0000",
             msgid=None, headers=(), ctype="text/plain; charset=us-ascii"):
    """A small well-formed RFC 5322 message (LF line ends) as bytes."""
    if msgid is None:
        msgid = "<%s@test.arca>" % sha256((subject + body + date).encode())[:16]
    lines = ["From: " + sender, "To: " + to, "Subject: " + subject, "Date: " + date,
             "Message-ID: " + msgid, "MIME-Version: 1.0", "Content-Type: " + ctype]
    lines += list(headers)
    text = "\n".join(lines) + "\n\n" + body
    return text.encode("utf-8")


class Arca:
    """One instance: a base directory and a key file outside it."""

    def __init__(self, base, key_file):
        self.base = Path(base)
        self.key_file = Path(key_file)

    def cmd(self, *args):
        return [str(ARCACTL), "--base", str(self.base), "--key-file", str(self.key_file),
                *[str(a) for a in args]]

    def run(self, *args, check=True, input=None, timeout=900, expect=None):
        """Runs arcactl; returns the CompletedProcess (stdout/stderr as bytes).
        check=True: a non-zero exit fails the test. expect=N: the exit code must be N."""
        p = subprocess.run(self.cmd(*args), capture_output=True, input=input, timeout=timeout)
        if expect is not None:
            assert p.returncode == expect, "expected exit %d\n%s" % (expect, describe(p))
        elif check and p.returncode != 0:
            raise AssertionError("arcactl failed\n" + describe(p))
        return p

    def json(self, *args, expect=0):
        p = self.run(*args, "--json", expect=expect)
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError("--json output is not JSON (%s)\n%s" % (e, describe(p)))

    # --- commands ---------------------------------------------------------------------
    def init(self, *args):
        return self.run("init", *args)

    def import_(self, source, archive="alice", folder=None, *extra, expect=0):
        """Imports with --json --quiet; returns the summary dict."""
        args = ["import", "--archive", archive]
        if folder is not None:
            args += ["--folder", folder]
        args += [*extra, "--json", "--quiet", str(source)]
        p = self.run(*args, expect=expect)
        try:
            summary = json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError("import --json summary is not JSON (%s)\n%s" % (e, describe(p)))
        for k in ("archived", "duplicates", "warnings", "errors", "bytes", "seconds", "batches"):
            assert k in summary, "import summary lacks %r: %r" % (k, summary)
        summary["_stderr"] = decode(p.stderr)
        return summary

    def folders(self, archive=None):
        args = ["folders"] + (["--archive", archive] if archive else [])
        data = self.json(*args)
        assert isinstance(data, list), "folders --json must be a list: %r" % (data,)
        return data

    def folder_count(self, archive, folder):
        for f in self.folders():
            if f.get("archive") == archive and f.get("folder") == folder:
                return f["messages"]
        return None

    def verify(self, *args):
        """Returns (exit code, parsed --json output)."""
        p = self.run("verify", *args, "--json", check=False)
        assert p.returncode in (0, 3), "verify failed to run\n" + describe(p)
        try:
            data = json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError("verify --json output is not JSON (%s)\n%s" % (e, describe(p)))
        assert "checked" in data and "damaged" in data, "verify --json fields: %r" % (data,)
        if p.returncode == 0:
            assert data["damaged"] == [], "verify exit 0 but damaged listed: %r" % (data,)
        else:
            assert data["damaged"], "verify exit 3 but no damaged entries: %r" % (data,)
        return p.returncode, data

    def assert_verify_clean(self, expect_checked=None):
        rc, data = self.verify()
        assert rc == 0, "verify not clean: %r" % (data["damaged"][:20],)
        if expect_checked is not None:
            assert data["checked"] == expect_checked, "verify checked %r, expected %r" % (
                data["checked"], expect_checked)
        return data

    def export_eml(self, out, *scope):
        """Exports (scope e.g. "--archive", "alice", "--folder", "Corpus") as eml into out;
        returns {id: sha256}. File names are <id>.eml."""
        self.run("export", *scope, "--format", "eml", "--out", out)
        result = {}
        for dirpath, _dirs, files in os.walk(out):
            for name in files:
                p = os.path.join(dirpath, name)
                key = name[:-4] if name.endswith(".eml") else os.path.relpath(p, out)
                # ids are STORE:N; the export writes STORE-N.eml (no ':' in file names)
                if re.match(r"^\d+-\d+$", key):
                    key = key.replace("-", ":")
                assert key not in result, "two exported files named %s" % name
                result[key] = sha256_file(p)
        return result

    def get(self, msg_id, check=True):
        return self.run("get", msg_id, check=check)

    def store_list(self):
        data = self.json("store", "list")
        if isinstance(data, dict) and "stores" in data:
            data = data["stores"]
        assert isinstance(data, list), "store list --json must be a list (or {stores:[...]}): %r" % (data,)
        return data

    def resolve(self, p):
        p = str(p)
        if p.startswith("~/"):
            return self.base / p[2:]
        if os.path.isabs(p):
            return Path(p)
        return self.base / p

    def store_paths(self, store_id):
        """(meta db path, content dir, index path or None) of a store, from `store list --json`
        (keys containing 'meta', 'content', 'index'), falling back to BASE/stores/ID/."""
        meta = content = index = None
        for s in self.store_list():
            if str(s.get("id")) != str(store_id):
                continue
            for k, v in s.items():
                if not isinstance(v, str):
                    continue
                lk = k.lower()
                if "meta" in lk and meta is None:
                    meta = self.resolve(v)
                elif "content" in lk and content is None:
                    content = self.resolve(v)
                elif "index" in lk and index is None:
                    index = self.resolve(v)
        sdir = self.base / "stores" / str(store_id)
        if meta is None:
            meta = sdir / "meta.db"
        if meta.is_dir():
            meta = meta / "meta.db"
        if content is None:
            content = sdir / "content"
        return meta, content, index

    def content_files(self, store_id=None):
        """All files in the content directories of the stores (or one store)."""
        ids = [store_id] if store_id is not None else [s.get("id") for s in self.store_list()]
        files = []
        for sid in ids:
            _meta, content, _index = self.store_paths(sid)
            assert content.is_dir(), "content dir of store %s not found at %s" % (sid, content)
            for dirpath, _dirs, names in os.walk(content):
                files += [Path(dirpath) / n for n in names]
        return sorted(files)

    def copy(self, dest):
        """A copy of this instance's base directory (same key file) at dest."""
        shutil.copytree(self.base, dest, symlinks=True)
        other = Arca(dest, self.key_file)
        for s in other.store_list():
            for k, v in s.items():
                if isinstance(v, str) and os.path.isabs(v):
                    assert not v.startswith(str(self.base) + os.sep), (
                        "store %s %s is an absolute path into the base directory (%s): a copied "
                        "or restored base directory would still use the old files" % (s.get("id"), k, v))
        return other


def new_arca(root, init=True, init_args=()):
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    a = Arca(root / "base", root / "instance.key")
    if init:
        a.init(*init_args)
        assert a.key_file.exists(), "init did not create the key file"
    return a


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not ARCACTL.exists():
        pytest.exit("arcactl binary not found at %s (set ARCA_BUILD)" % ARCACTL, returncode=1)


@pytest.fixture
def arca(tmp_path):
    """A fresh, initialised instance (base dir + key file under tmp_path)."""
    return new_arca(tmp_path / "inst")


@pytest.fixture
def arca_factory(tmp_path):
    """new(name, init=True, init_args=()) -> Arca under tmp_path/name."""
    def make(name, init=True, init_args=()):
        return new_arca(tmp_path / name, init=init, init_args=init_args)
    return make


class Corpus:
    def __init__(self, path):
        self.dir = Path(path)
        self.files = sorted(p for p in self.dir.iterdir() if p.name.endswith(".eml"))
        self.sha_by_file = {}
        self.total_bytes = 0
        for p in self.files:
            data = p.read_bytes()
            self.total_bytes += len(data)
            self.sha_by_file[p] = sha256(data)
        self.shas = collections.Counter(self.sha_by_file.values())
        self.file_by_sha = {v: k for k, v in self.sha_by_file.items()}


@pytest.fixture(scope="session")
def corpus():
    path = os.environ.get("ARCA_CORPUS")
    if not path:
        path = str(CORPUS_CACHE)
        script = REPO.parent / "shared" / "corpus" / "fetch-spamassassin"
        subprocess.run(["bash", str(script), path], check=True)
    c = Corpus(path)
    assert len(c.files) == CORPUS_COUNT, "corpus at %s has %d .eml files, expected %d" % (
        path, len(c.files), CORPUS_COUNT)
    return c


@pytest.fixture(scope="session")
def corpus_instance(tmp_path_factory, corpus):
    """Session-wide instance with the whole corpus imported into alice/Corpus. READ-ONLY:
    tests that change anything must work on corpus_instance.copy(...)."""
    a = new_arca(tmp_path_factory.mktemp("corpus-instance"))
    a.import_summary = a.import_(corpus.dir, "alice", "Corpus")
    return a


@pytest.fixture(scope="session")
def corpus_export(tmp_path_factory, corpus_instance):
    """{id: sha256} of alice/Corpus of corpus_instance, exported once as eml."""
    out = tmp_path_factory.mktemp("corpus-export") / "eml"
    return corpus_instance.export_eml(out, "--archive", "alice", "--folder", "Corpus")


def stats_stores(stats):
    """The per-store entries of `stats --json` (a list of dicts with at least "messages")."""
    stores = stats.get("stores") if isinstance(stats, dict) else None
    assert isinstance(stores, list) and stores, "stats --json has no 'stores' list: %r" % (stats,)
    for s in stores:
        assert isinstance(s, dict) and "messages" in s, "stats store entry lacks messages: %r" % (s,)
    return stores


def stats_content_records(stats):
    return sum(s["messages"] for s in stats_stores(stats))


def search(inst, query, *args, expect=0):
    data = inst.json("search", *args, query, expect=expect)
    assert isinstance(data, dict) and isinstance(data.get("hits"), list), (
        "search --json must give {hits:[...]}: %r" % (data,))
    return data["hits"]


def header_value(data, name):
    head = data.split(b"\n\n", 1)[0]
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":[ \t]*(.*?)\r?$", head)
    return m.group(1).decode("latin-1") if m else None


def distinctive_subjects(corpus, n=5, seed=3):
    """[(subject, path)]: plain ASCII subjects of 3-8 alphabetic words, unique in the corpus."""
    import random
    counts = collections.Counter()
    subj = {}
    for p in corpus.files:
        s = header_value(p.read_bytes(), "Subject")
        if s is None:
            continue
        s = s.strip()
        counts[s.lower()] += 1
        if re.fullmatch(r"[A-Za-z]{3,}( [A-Za-z]{3,}){2,7}", s):
            subj[p] = s
    good = [(s, p) for p, s in subj.items() if counts[s.lower()] == 1]
    good.sort(key=lambda sp: sp[1].name)
    return random.Random(seed).sample(good, n)


COMMIT_LINE = re.compile(r"^([0-9a-f]{64}) (.*) (new|dup)$")


def read_commit_log(path):
    """{sha: message id} of every complete line of the commit log."""
    committed = {}
    if not os.path.exists(path):
        return committed
    with open(path, "rb") as f:
        data = f.read().decode("ascii", "replace")
    lines = data.split("\n")
    if not data.endswith("\n"):
        lines = lines[:-1]  # a line being written when killed
    for line in lines:
        if not line:
            continue
        m = COMMIT_LINE.match(line)
        assert m, "malformed commit log line %r" % line
        committed[m.group(1)] = m.group(2)
    return committed




def searchable_ids(inst, *args):
    """Ids of every message the index finds ("-word" matches every message without it)."""
    p = inst.run("search", "--json", "--per-page", "10000", *args, "--", "-qqqnosuchwordqqq")
    hits = json.loads(p.stdout)["hits"]
    assert len(hits) < 10000, "more than one page"
    return {h["id"] for h in hits}


def parse_container(path):
    """Records of a container file (docs/storage-format.md section 1.1):
    [(offset, type, length, seq)]; type 1 = content (seq = message id), 2 = links."""
    import struct
    data = Path(path).read_bytes()
    out = []
    off = 0
    while off < len(data):
        assert data[off:off + 4] == b"ARC1", "no record magic at %s+%d" % (path, off)
        _ver, rtype, _res, _key_id, body_len, seq = struct.unpack_from("<BBHIIQ", data, off + 4)
        length = 52 + body_len
        out.append((off, rtype, length, seq))
        off += length
    assert off == len(data), "container %s ends inside a record" % path
    return out

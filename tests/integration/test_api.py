"""Black-box tests of the instance JSON API (docs/api.md) against the real `arcad instance`,
over its Unix socket (<base>/run/http.sock) and over HTTPS.

Covers: every command's argument checking (the command list is read from docs/api.md, which
a unit test keeps equal to the code's command table), authentication, a long import of the
SpamAssassin corpus that reports progress and is cancelled without losing what was committed
(and a re-run adds exactly the rest), uploads, downloads."""
import base64
import http.client
import json
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, Arca, describe
from arcad import ARCAD, create_user, free_port

ADMIN = ("admin", "admin-pw-1")
USER = ("ursula", "ursula-pw-1")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def basic(user, pw):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


class Api:
    def __init__(self, connect):
        self.connect = connect

    def request(self, method, path, body=b"", auth=ADMIN, headers=None):
        c = self.connect()
        h = {"Content-Type": "application/json"}
        if auth is not None:
            h["Authorization"] = auth if isinstance(auth, str) else basic(*auth)
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = dict((k.lower(), v) for k, v in r.getheaders())
        c.close()
        return r.status, hdrs, data

    def call(self, cmd, args=None, auth=ADMIN, raw=None):
        st, _h, data = self.request("POST", "/api/invoke/" + cmd,
                                    raw if raw is not None else (args if args is not None else b""),
                                    auth=auth)
        try:
            return st, json.loads(data)
        except ValueError:
            raise AssertionError("%s: reply is not JSON (HTTP %d): %r" % (cmd, st, data[:300]))

    def ok(self, cmd, args=None, auth=ADMIN):
        st, j = self.call(cmd, args, auth)
        assert st in (200, 202), "%s %r -> %d %r" % (cmd, args, st, j)
        return j

    def status(self, token, auth=ADMIN, cancel=False):
        st, _h, data = self.request("POST", "/api/cancel-async" if cancel else "/api/get-status",
                                    {"token": token}, auth=auth)
        assert st == 200, (st, data)
        return json.loads(data)

    def wait(self, token, auth=ADMIN, timeout=900):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.status(token, auth)
            if s["status"] not in ("queued", "running"):
                return s
            time.sleep(0.1)
        raise AssertionError("job %s did not finish" % token)

    def upload(self, data, auth=ADMIN, chunk=1024 * 1024):
        upload_id = None
        for off in range(0, max(len(data), 1), chunk):
            path = "/api/upload" + ("/" + upload_id if upload_id else "")
            st, _h, body = self.request("POST", path, data[off:off + chunk], auth=auth,
                                        headers={"Content-Type": "application/octet-stream"})
            assert st == 200, (st, body)
            upload_id = json.loads(body)["result"]["upload"]
        return upload_id


class Daemon:
    def __init__(self, arca, workdir, extra=()):
        self.arca = arca
        self.log_path = Path(workdir) / "arcad-api.log"
        self.sock = str(arca.base / "run" / "http.sock")
        self.extra = list(extra)
        self.proc = None

    def start(self, timeout=30):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(ARCAD), "instance", "--base", str(self.arca.base),
                                      "--key-file", str(self.arca.key_file), "--workers", "2",
                                      *self.extra], stdout=self.log, stderr=self.log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("arcad exited %s:\n%s" % (self.proc.returncode, self.log_text()))
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(self.sock)
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("arcad did not start:\n" + self.log_text())

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("arcad did not stop on SIGTERM:\n" + self.log_text())
            assert rc == 0, "arcad exited %s:\n%s" % (rc, self.log_text())
        self.log.close()

    def api(self):
        return Api(lambda: UnixHTTPConnection(self.sock))


@pytest.fixture(scope="module", autouse=True)
def _arcad_binary():
    if not ARCAD.exists():
        pytest.skip("arcad not built at %s" % ARCAD)


@pytest.fixture
def daemon(tmp_path):
    arca = Arca(tmp_path / "inst", tmp_path / "inst.key")
    arca.init()
    create_user(arca, ADMIN[0], ADMIN[1], "--admin")
    create_user(arca, USER[0], USER[1])
    d = Daemon(arca, tmp_path).start()
    yield d
    d.stop()


def doc_commands():
    """{command: [(argument, type)]} from docs/api.md."""
    text = (REPO / "docs" / "api.md").read_text()
    cmds = {}
    for m in re.finditer(r"^### (\w+)\n(.*?)(?=^### |\Z)", text, re.M | re.S):
        args = re.findall(r"^\| `(\w+)` \| (string|integer|boolean|array of strings)", m.group(2), re.M)
        cmds[m.group(1)] = args
    assert len(cmds) >= 20, "docs/api.md lists too few commands: %r" % list(cmds)
    return cmds


# ---------------------------------------------------------------------------------------


def test_every_command_checks_its_arguments(daemon):
    api = daemon.api()
    users_before = api.ok("GetUsers")["result"]
    stores_before = api.ok("GetStores")["result"]
    wrong = {"string": 42, "integer": "x", "boolean": "x", "array of strings": "x"}
    want = {"string": "expected a string, got number", "integer": "expected an integer, got string",
            "boolean": "expected a boolean, got string",
            "array of strings": "expected an array of strings, got string"}
    for cmd, args in doc_commands().items():
        for name, typ in args:
            st, j = api.call(cmd, {name: wrong[typ]})
            assert st == 400 and j["status"] == "failed", (cmd, name, st, j)
            assert j["error"]["message"] == "argument '%s': %s" % (name, want[typ]), (cmd, j)
        st, j = api.call(cmd, {"noSuchArgument": 1})
        assert st == 400 and "unknown argument 'noSuchArgument'" in j["error"]["message"], (cmd, j)
        st, j = api.call(cmd, raw=b"{\"a\": ")
        assert st == 400 and j["error"]["code"] == "syntax", (cmd, j)
    assert api.ok("GetUsers")["result"] == users_before
    assert len(api.ok("GetStores")["result"]) == len(stores_before)


def test_errors_and_auth(daemon):
    api = daemon.api()
    st, h, body = api.request("POST", "/api/invoke/GetServerInfo", auth=None)
    assert st == 401 and h.get("www-authenticate", "").startswith("Basic")
    st, j = api.call("GetServerInfo", auth=(ADMIN[0], "wrong"))
    assert st == 401 and j["error"]["code"] == "unauthorized"
    st, j = api.call("NoSuchCommand")
    assert st == 404 and j["error"]["code"] == "unknown_command"
    st, j = api.call("GetUsers", raw=b"[]")
    assert st == 400
    st, _h, _b = api.request("POST", "/api/invoke/CreateUser", b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert st == 413
    st, j = api.call("GetUsers", auth=USER)
    assert st == 403 and j["error"]["code"] == "forbidden"
    st, j = api.call("CreateUser", {"userName": 5})
    assert st == 400 and j["error"]["message"] == "argument 'userName': expected a string, got number"
    assert [u for u in api.ok("GetUsers")["result"] if u["userName"] == "5"] == []
    # sessions
    st, _h, body = api.request("POST", "/api/login", {"userName": USER[0], "password": USER[1]}, auth=None)
    assert st == 200
    token = json.loads(body)["result"]["token"]
    assert api.ok("GetServerInfo", auth="Bearer " + token)["result"]["userName"] == USER[0]
    assert api.request("POST", "/api/logout", auth="Bearer " + token)[0] == 200
    assert api.call("GetServerInfo", auth="Bearer " + token)[0] == 401
    # the log has one line per request and never a password or token
    log = daemon.log_text()
    assert "command=GetServerInfo" in log and "status=401" in log
    assert ADMIN[1] not in log and USER[1] not in log and token not in log


def folder_count(api, archive, folder):
    for f in api.ok("GetChildFolders", {"folder": archive})["result"]:
        if f["folder"] == archive + "/" + folder:
            return f["messages"]
    return 0


def test_long_import_progress_cancel_and_resume(daemon, corpus):
    """The must-hold: a long import shows progress, can be cancelled, keeps what it
    committed, and a re-run adds exactly the rest."""
    api = daemon.api()
    args = {"path": str(corpus.dir), "archive": ADMIN[0], "folder": "Corpus", "batchSize": 100}
    job = api.ok("Import", args)
    assert job["status"] in ("queued", "running") and job["token"]
    token = job["token"]
    while True:
        s = api.status(token)
        assert s["status"] in ("queued", "running"), s
        if s["progress"]["committed"] > 0:
            break
        time.sleep(0.02)
    assert s["progress"]["total"] == len(corpus.files) and s["progress"]["unit"] == "messages"
    assert s["progress"]["done"] > 0
    c = api.status(token, cancel=True)
    assert c["cancelRequested"] is True
    final = api.wait(token)
    assert final["status"] == "cancelled", final
    res = final["result"]
    assert res["complete"] is False
    assert 0 < res["committed"] < len(corpus.files), res
    assert res["committed"] == res["archived"] + res["alreadyPresent"]
    assert final["progress"]["committed"] == res["committed"]
    # exactly what was reported committed is archived
    first = folder_count(api, ADMIN[0], "Corpus")
    assert first == res["archived"], (first, res)
    # ... and the re-run adds exactly the rest (identical content in one folder counts once)
    again = api.wait(api.ok("Import", args)["token"])
    assert again["status"] == "succeeded", again
    r2 = again["result"]
    total = folder_count(api, ADMIN[0], "Corpus")
    assert total == len(corpus.shas), (total, len(corpus.shas))
    assert r2["archived"] == total - first, (r2, total, first)
    assert r2["committed"] == len(corpus.files)
    v = api.wait(api.ok("VerifyStore")["token"])
    assert v["status"] == "succeeded" and v["result"]["damagedCount"] == 0


def test_shutdown_during_import_keeps_committed(daemon, corpus):
    """SIGTERM while an import runs: arcad stops at a commit boundary and exits 0; after a
    restart the same import completes the folder exactly."""
    api = daemon.api()
    args = {"path": str(corpus.dir), "archive": ADMIN[0], "folder": "Corpus", "batchSize": 100}
    token = api.ok("Import", args)["token"]
    while api.status(token)["progress"]["committed"] == 0:
        time.sleep(0.02)
    daemon.stop()
    daemon.start()
    api = daemon.api()
    first = folder_count(api, ADMIN[0], "Corpus")
    assert 0 < first < len(corpus.shas)
    again = api.wait(api.ok("Import", args)["token"])
    assert again["status"] == "succeeded", again
    assert again["result"]["archived"] == len(corpus.shas) - first
    assert folder_count(api, ADMIN[0], "Corpus") == len(corpus.shas)


def test_upload_import_view_download(daemon, corpus):
    api = daemon.api()
    files = corpus.files[:40]
    # an mbox (mboxrd quoting) of 40 corpus messages, uploaded in 64 KiB chunks
    mbox = b""
    for f in files:
        data = re.sub(rb"(?m)^(>*From )", rb">\1", f.read_bytes())
        mbox += b"From x@example.com Mon Jun  3 10:00:00 2024\n" + data + \
            (b"" if data.endswith(b"\n") else b"\n") + b"\n"
    upload = api.upload(mbox, auth=USER, chunk=64 * 1024)
    st, j = api.call("Import", {"upload": upload, "archive": ADMIN[0]}, auth=USER)
    assert st == 403
    done = api.wait(api.ok("Import", {"upload": upload, "format": "mbox", "folder": "Up"},
                           auth=USER)["token"], auth=USER)
    assert done["status"] == "succeeded" and done["result"]["committed"] == len(files), done
    msgs = api.ok("GetMessages", {"folder": USER[0] + "/Up", "limit": 1000},
                  auth=USER)["result"]["messages"]
    assert len(msgs) == len({corpus.sha_by_file[f] for f in files})
    # one .eml upload: the raw download is byte-identical
    f = files[0]
    upload = api.upload(f.read_bytes(), auth=USER)
    done = api.wait(api.ok("Import", {"upload": upload, "format": "eml", "folder": "One"},
                           auth=USER)["token"], auth=USER)
    assert done["status"] == "succeeded", done
    one = api.ok("GetMessages", {"folder": USER[0] + "/One"}, auth=USER)["result"]["messages"]
    assert len(one) == 1
    m = api.ok("GetMessage", {"id": one[0]["id"]}, auth=USER)["result"]
    assert sorted(m["folders"]) == [USER[0] + "/One", USER[0] + "/Up"]  # stored once, in both
    st, h, raw = api.request("GET", m["rawUrl"], auth=USER)
    assert st == 200 and h["content-type"] == "message/rfc822"
    assert raw == f.read_bytes()
    # an export of the user's archive, downloaded
    exp = api.wait(api.ok("Export", {"archive": USER[0]})["token"])
    assert exp["status"] == "succeeded" and exp["result"]["exported"] == len(msgs), exp
    st, _h, body = api.request("GET", exp["result"]["download"])
    assert st == 200 and body.startswith(b"From ")
    assert len(re.findall(rb"(?m)^From ", body)) == len(msgs)


def test_https_listener(tmp_path):
    arca = Arca(tmp_path / "inst", tmp_path / "inst.key")
    arca.init()
    create_user(arca, ADMIN[0], ADMIN[1], "--admin")
    for attempt in range(5):
        port = free_port()
        d = Daemon(arca, tmp_path, ["--https", "127.0.0.1:%d" % port])
        try:
            d.start()
            break
        except AssertionError:
            if attempt == 4:
                raise
    try:
        ctx = ssl.create_default_context(cafile=str(arca.base / "tls" / "cert.pem"))
        ctx.check_hostname = False
        api = Api(lambda: http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60))
        assert api.ok("GetServerInfo")["result"]["userName"] == ADMIN[0]
    finally:
        d.stop()


def test_rename_user_with_messages_survives_recreate(daemon, corpus):
    """RenameUser renames the user's archive too (messages, folders, UIDs stay); the old name
    stays the archive's, so that recreating the store's metadata from its containers (whose
    recovery records carry the name at write time) puts every message back into the renamed
    archive, including those archived after the rename (under the new name)."""
    api = daemon.api()
    files = corpus.files[:20]
    upload = api.upload(b"".join(b"From x@example.com Mon Jun  3 10:00:00 2024\n" +
                                 re.sub(rb"(?m)^(>*From )", rb">\1", f.read_bytes()) + b"\n"
                                 for f in files[:10]), auth=USER)
    done = api.wait(api.ok("Import", {"upload": upload, "format": "mbox", "folder": "Old"},
                           auth=USER)["token"], auth=USER)
    assert done["status"] == "succeeded", done
    api.ok("RenameUser", {"oldUserName": USER[0], "newUserName": "renamed"})
    new = ("renamed", USER[1])
    upload = api.upload(files[10].read_bytes(), auth=new)
    done = api.wait(api.ok("Import", {"upload": upload, "format": "eml", "folder": "New"},
                           auth=new)["token"], auth=new)
    assert done["status"] == "succeeded", done
    before = {f: len(api.ok("GetMessages", {"folder": "renamed/" + f, "limit": 100},
                            auth=new)["result"]["messages"]) for f in ("Old", "New")}
    assert before == {"Old": len({corpus.sha_by_file[f] for f in files[:10]}), "New": 1}
    st, j = api.call("CreateUser", {"userName": USER[0], "password": "x"})
    assert st == 409 and j["error"]["code"] == "exists", j
    daemon.stop()
    arca = daemon.arca
    p = arca.run("recreate", "--store", "1", check=False)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    folders = arca.run("folders", "--archive", "renamed").stdout.decode()
    assert "Old" in folders and "New" in folders, folders
    assert USER[0] not in [a.get("name") for a in json.loads(arca.run("archives", "--json").stdout)]
    daemon.start()
    api = daemon.api()
    after = {f: len(api.ok("GetMessages", {"folder": "renamed/" + f, "limit": 100},
                           auth=new)["result"]["messages"]) for f in ("Old", "New")}
    assert after == before

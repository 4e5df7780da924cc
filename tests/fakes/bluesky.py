"""The AT Protocol team's own Bluesky servers for tests, on 127.0.0.1: not a mock.

tests/atproto/launcher.mjs runs @atproto/dev-env's TestNetwork in one Node 22 process: the
identity directory (PLC), a PDS, the Bluesky AppView (with bsync, and the Ozone moderation
service TestNetwork always builds), every server listening on 127.0.0.1 only, on free ports.
The AppView keeps its tables in a fresh database of the session's PostgreSQL server
(tests/fakes/postgres.py); the PDS keeps SQLite files in a temporary folder, deleted at the
end. The launcher exits when its stdin closes, so a test session killed with SIGKILL leaves
no server behind (the next session deletes its folder). Node and the packages come from tests/atproto/install.sh (pinned by its
package-lock.json; .ci/run runs it). Without tests/atproto/node_modules every test that asks
for the network SKIPS, naming install.sh; CI installs it, so CI runs them.

Load it as a pytest plugin (it loads tests.fakes.postgres itself):

    pytest_plugins = ["tests.fakes.bluesky"]

    def test_something(bsky_network):
        alice = bsky_network.create_account("alice")
        password = bsky_network.app_password(alice)
        client = atproto.Client(base_url=bsky_network.pds_url)
        client.login(alice.handle, password)
        client.send_post("hello")
        bsky_network.process_all()                 # the AppView has indexed it now
        ...

Tests that use the fixture are marked `bluesky` (`-m "not bluesky"` leaves them out).

Fixtures:

    bsky_network   session   the BlueskyNetwork (below), started once (about 5-10 s), its
                             launcher stopped (its process group killed) at the end

BlueskyNetwork:

    net.pds_url, net.appview_url, net.plc_url   http://127.0.0.1:PORT each
    net.pds_public_url       http://localhost:PORT: the PDS's name in DID documents (the
                             atproto SDK switches to it after login; localhost is loopback)
    net.pds_did, net.appview_did                 the services' DIDs (did:web:localhost, did:plc:...)
    net.control_url          the launcher's control endpoint (POST /process-all)
    net.pid                  the launcher's process id (its own process group)
    net.startup_seconds      launch to ready, as measured here
    net.create_account(name=None) -> Account     a fresh account, unique handle `<name><n><hex>.test`,
                             already indexed by the AppView (so login's getProfile finds it)
    net.app_password(account, name=None) -> str  com.atproto.server.createAppPassword
    net.process_all()        the AppView (and bsync, Ozone) catch up with everything the PDS
                             sequenced so far: dev-env's network.processAll(), deterministic
    net.wait_for(predicate, timeout=10.0, retry_on=()) -> value
                             calls process_all() then predicate() until it returns something
                             truthy (returned) or raises one of retry_on; TimeoutError after
    net.xrpc(nsid, *, params=None, body=..., token=None, base_url=None, procedure=False)
                             -> XrpcResponse(status, body, headers): one raw XRPC call over HTTP
                             (POST when body is given, even None -> JSON null, or when
                             procedure=True: an empty POST); never raises for an error status
    net.call(...)            the same, raising XrpcError (.status, .error, .message) unless 2xx
    net.listening_addresses() -> list[(ip, port)]  the launcher's listening TCP sockets
    net.stderr_tail(chars=4000) -> str           the launcher's log

Account: handle, did, password, email, access_jwt, refresh_jwt.

Outside pytest (a script): `with running_bsky_network(postgres_database) as net:`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from tests.fakes.serving import serve

if TYPE_CHECKING:
    from tests.fakes.postgres import PostgresDatabase, PostgresServer

pytest_plugins = ["tests.fakes.postgres"]

ATPROTO_DIR = Path(__file__).resolve().parent.parent / "atproto"
LAUNCHER = ATPROTO_DIR / "launcher.mjs"
NODE = ATPROTO_DIR / "node_modules" / ".bin" / "node"
INSTALL_STAMP = ATPROTO_DIR / "node_modules" / ".revenant-install-stamp"
INSTALL_HINT = (
    "the AT Protocol test servers are not installed: run tests/atproto/install.sh "
    "(Node 22 + @atproto/dev-env from npm, ~2 min, ~650 MB; .ci/run runs it)"
)
START_TIMEOUT = 120.0  # seconds from launch to the ready line (about 7 s on 2 cores)
STOP_TIMEOUT = 15.0
PREFIX = "revenant-bsky-"  # the session's folder under the temporary folder
OWNER_FILE = "owner.pid"  # the test process that started the launcher
SCHEMA = "revenant"  # DB_POSTGRES_SCHEMA: letters and _ only
PASSWORD_CHARS = re.compile(r"[^a-z0-9]")
_counter = itertools.count(1)
_started: list[float] = []
T = TypeVar("T")


class BlueskyUnavailable(RuntimeError):
    pass


class XrpcError(RuntimeError):
    def __init__(self, nsid: str, status: int, body: Any) -> None:
        self.nsid = nsid
        self.status = status
        self.body = body
        self.error = body.get("error") if isinstance(body, dict) else None
        self.message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"{nsid}: HTTP {status} {self.error}: {self.message}")


@dataclass
class XrpcResponse:
    status: int
    body: Any  # the decoded JSON, or the raw bytes when not JSON, or None when empty
    headers: dict[str, str]

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None

    @property
    def message(self) -> str | None:
        return self.body.get("message") if isinstance(self.body, dict) else None


@dataclass
class Account:
    handle: str
    did: str
    password: str
    email: str
    access_jwt: str
    refresh_jwt: str


_NO_BODY = object()


@dataclass
class BlueskyNetwork:
    pds_url: str
    appview_url: str
    plc_url: str
    pds_public_url: str
    control_url: str
    pds_did: str
    appview_did: str
    pid: int
    startup_seconds: float
    ready: dict[str, Any]
    stderr_path: Path
    accounts: list[Account] = field(default_factory=list)

    # --- raw XRPC ------------------------------------------------------------------------
    def xrpc(
        self,
        nsid: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = _NO_BODY,
        token: str | None = None,
        base_url: str | None = None,
        procedure: bool = False,
        timeout: float = 30.0,
    ) -> XrpcResponse:
        """GET (a query) or, when `body` is given, POST it as JSON (a procedure); `None` is
        sent as JSON null and a dict's None values as nulls (no field is dropped). A procedure
        without input (refreshSession): `procedure=True` and no body, an empty POST."""
        url = f"{base_url or self.pds_url}/xrpc/{nsid}"
        if params:
            query = [(k, v) for k, v in params.items() if v is not None]
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not _NO_BODY:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        method = "POST" if procedure or data is not None else "GET"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as err:
            status, raw, got = err.code, err.read(), dict(err.headers)
        decoded: Any = raw or None
        content_type = next((v for k, v in got.items() if k.lower() == "content-type"), "")
        if raw and "json" in content_type:
            decoded = json.loads(raw)
        return XrpcResponse(status, decoded, got)

    def call(self, nsid: str, **kwargs: Any) -> Any:
        """`xrpc()`, returning the body; XrpcError unless the status is 2xx."""
        response = self.xrpc(nsid, **kwargs)
        if not 200 <= response.status < 300:
            raise XrpcError(nsid, response.status, response.body)
        return response.body

    # --- accounts ------------------------------------------------------------------------
    def create_account(self, name: str | None = None) -> Account:
        """A fresh account on the PDS (no invite needed), indexed by the AppView on return.
        The handle is `<name><n><hex>.test`: letters and digits of `name` (default "user"),
        cut to fit the PDS's 18-character limit, made unique (and never a reserved word)."""
        stem = PASSWORD_CHARS.sub("", (name or "user").lower())[:8] or "user"
        front = f"{stem}{next(_counter)}{os.urandom(2).hex()}"[:18]
        handle = f"{front}.test"
        password = os.urandom(12).hex()
        email = f"{front}@example.com"
        body = self.call(
            "com.atproto.server.createAccount",
            body={"handle": handle, "email": email, "password": password},
        )
        account = Account(
            handle=body["handle"], did=body["did"], password=password, email=email,
            access_jwt=body["accessJwt"], refresh_jwt=body["refreshJwt"],
        )  # fmt: skip
        self.accounts.append(account)
        self.process_all()
        return account

    def app_password(self, account: Account, name: str | None = None) -> str:
        """A new app password for `account` (what the bot logs in with): xxxx-xxxx-xxxx-xxxx."""
        body = self.call(
            "com.atproto.server.createAppPassword",
            body={"name": name or f"revenant-{os.urandom(3).hex()}"},
            token=account.access_jwt,
        )
        return str(body["password"])

    # --- indexing ------------------------------------------------------------------------
    def process_all(self, timeout: float = 60.0) -> None:
        """Wait until the AppView has indexed everything the PDS has sequenced so far."""
        request = urllib.request.Request(f"{self.control_url}/process-all", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[-2000:]
            raise BlueskyUnavailable(f"process-all failed ({err.code}): {detail}") from None

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 10.0,
        *,
        interval: float = 0.1,
        retry_on: tuple[type[BaseException], ...] = (),
    ) -> T:
        """process_all(), then predicate(), until it returns something truthy (returned) or
        raises one of `retry_on` (tried again); TimeoutError with the last value after."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            self.process_all()
            try:
                last = predicate()
                if last:
                    return last
            except retry_on as err:
                last = err
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not true within {timeout} s; last: {last!r}")
            time.sleep(interval)

    # --- the process ---------------------------------------------------------------------
    def listening_addresses(self) -> list[tuple[str, int]]:
        """(ip, port) of every TCP socket the launcher listens on (from /proc)."""
        return _listening_sockets(self.pid)

    def stderr_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.stderr_path.read_text(errors="replace")[-chars:]
        return ""


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def _decode_address(hex_address: str) -> tuple[str, int]:
    ip_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = ".".join(str(b) for b in reversed(raw))
    else:  # IPv6: four little-endian 32-bit words
        words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
        full = b"".join(words)
        if full[:12] == b"\0" * 10 + b"\xff\xff":
            ip = ".".join(str(b) for b in full[12:])  # ::ffff:a.b.c.d
        else:
            import ipaddress

            ip = str(ipaddress.IPv6Address(full))
    return ip, int(port_hex, 16)


def _listening_sockets(pid: int) -> list[tuple[str, int]]:
    inodes = _socket_inodes(pid)
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.append(_decode_address(fields[1]))
    return sorted(found)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Close stdin (the launcher's cue to close every server), then SIGTERM, then SIGKILL
    its process group; the group is killed in the end in any case."""
    with contextlib.suppress(OSError):
        if process.stdin:
            process.stdin.close()
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        try:
            process.wait(STOP_TIMEOUT if sig is None else 5)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything it left in its group


def _reap_orphans(parent: Path) -> None:
    """Delete the folders of sessions that were killed (their owner process is gone; their
    launcher exited when its stdin closed)."""
    for root in parent.glob(PREFIX + "*"):
        try:
            os.kill(int((root / OWNER_FILE).read_text()), 0)
            continue  # its session is still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # not ours to judge
        shutil.rmtree(root, ignore_errors=True)


def installed() -> bool:
    return NODE.exists() and INSTALL_STAMP.exists()


@contextlib.contextmanager
def running_bsky_network(database: PostgresDatabase) -> Iterator[BlueskyNetwork]:
    """Start the launcher against `database`; stop it (and delete its files) on exit."""
    if not installed():
        raise BlueskyUnavailable(INSTALL_HINT)
    parent = Path(tempfile.gettempdir())
    _reap_orphans(parent)
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    stdout_path, stderr_path = root / "stdout.log", root / "stderr.log"
    (root / "tmp").mkdir()
    env = {
        **os.environ,
        "DB_POSTGRES_URL": database.url_with_password,
        "DB_POSTGRES_SCHEMA": SCHEMA,
        "TMPDIR": str(root / "tmp"),  # the PDS's SQLite files and blobs
    }
    started = time.monotonic()
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [str(NODE), str(LAUNCHER)], cwd=ATPROTO_DIR, env=env,
            stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True,
        )  # fmt: skip
    try:
        ready = _wait_ready(process, stdout_path, stderr_path, started)
        network = BlueskyNetwork(
            pds_url=ready["pds_url"], appview_url=ready["appview_url"], plc_url=ready["plc_url"],
            pds_public_url=ready["pds_public_url"], control_url=ready["control_url"],
            pds_did=ready["pds_did"], appview_did=ready["appview_did"], pid=process.pid,
            startup_seconds=time.monotonic() - started, ready=ready, stderr_path=stderr_path,
        )  # fmt: skip
        yield network
    finally:
        _kill_group(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(
    process: subprocess.Popen[bytes], stdout_path: Path, stderr_path: Path, started: float
) -> dict[str, Any]:
    def tail() -> str:
        text = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
        return text[-4000:] or "(empty)"

    while True:
        for line in stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"ready"' in line:
                with contextlib.suppress(ValueError):
                    ready: dict[str, Any] = json.loads(line)
                    if ready.get("ready") is True:
                        return ready
        if process.poll() is not None:
            raise BlueskyUnavailable(
                f"the launcher exited ({process.returncode}) before it was ready; "
                f"its stderr:\n{tail()}"
            )
        if time.monotonic() - started > START_TIMEOUT:
            raise BlueskyUnavailable(
                f"the launcher was not ready within {START_TIMEOUT:.0f} s; its stderr:\n{tail()}"
            )
        time.sleep(0.05)


@pytest.fixture(scope="session")
def bsky_network(postgres_server: PostgresServer) -> Iterator[BlueskyNetwork]:
    """PLC + PDS + AppView for the whole session (see the module docstring)."""
    if not installed():
        pytest.skip(INSTALL_HINT)
    database = postgres_server.create_database()
    try:
        yield from serve(running_bsky_network(database), BlueskyUnavailable, _started)
    finally:
        postgres_server.drop_database(database.name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "bsky_network" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.bluesky)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _started:
        terminalreporter.write_line(
            f"bluesky: PLC + PDS + AppView (@atproto/dev-env) started in {_started[0]:.1f} s"
        )

"""A real PostgreSQL server for tests, started once per test session in a temporary folder.

Debian's `postgresql` package provides the binaries (/usr/lib/postgresql/<ver>/bin, or
$REVENANT_PG_BINDIR; CI installs the package, see .ci/run). The cluster listens on 127.0.0.1 on a free port, keeps its
unix socket in the temporary folder, requires passwords over TCP (scram-sha-256), and is
stopped and deleted at the end of the session (or, if the session was killed, by the
next session, which stops clusters whose owner process is gone). It trades durability for speed (fsync,
full_page_writes and synchronous_commit off): it is a test server. initdb refuses to run
as root, so when the tests run as root the cluster runs as the `postgres` user (runuser)
and owns its data folder. Without the binaries every test that asks for it FAILS with
"run `apt-get install postgresql`": never a silent skip.

Load it as a pytest plugin (in a test module, or once in tests/conftest.py):

    pytest_plugins = ["tests.fakes.postgres"]

    def test_something(postgres_db):          # a fresh, empty database for this test
        store = PostgresStore(postgres_db.location)
        ...

Fixtures:

    postgres_server   session   the PostgresServer (below)
    postgres_db       function  a PostgresDatabase made for this test by CREATE DATABASE
                                from an empty template (a few ms), owned by the ordinary
                                role `revenant`, dropped (WITH FORCE) after the test

PostgresServer:

    server.host, server.port          "127.0.0.1", the port it listens on
    server.socket_dir                 the unix socket's folder (for libpq's host=)
    server.role, server.role_password the ordinary role every database belongs to
    server.superuser, server.superuser_password
    server.create_database(name=None, *, template=None) -> PostgresDatabase
    server.drop_database(name)
    server.admin()                    a psycopg autocommit connection as the superuser
    server.startup_seconds            how long initdb + start took (the session's cost)

PostgresDatabase:

    db.name
    db.url                  postgresql://revenant@127.0.0.1:PORT/NAME   (no password)
    db.url_with_password    the same with the role's password in it (for a subprocess)
    db.password             the role's password
    db.location             bot.store.PostgresLocation(url, password)
    db.env()                {"PGPASSWORD": ...}: what a child process needs to connect
    db.connect()            a psycopg autocommit connection as the role

Outside pytest (a script, a benchmark): `with running_postgres_server() as server:`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.serving import serve

INSTALL_HINT = (
    "PostgreSQL is not installed: run `apt-get install postgresql` "
    "(Debian's package; .ci/run installs it). The store tests need a real server."
)
BINDIR_ENV = "REVENANT_PG_BINDIR"  # where initdb/pg_ctl are, if not Debian's folder
RUN_AS = "postgres"  # the unprivileged user the cluster runs as when tests run as root
ROLE = "revenant"
TEMPLATE = "revenant_template"
PREFIX = "revenant-pg-"  # the session's folder under the temporary folder
OWNER_FILE = "owner.pid"  # the test process that started the cluster
_counter = itertools.count(1)
_started: list[float] = []  # the session cluster's startup time, for the summary


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path:
    """The folder with initdb/pg_ctl: $REVENANT_PG_BINDIR when set, else Debian's newest
    /usr/lib/postgresql/<ver>/bin, else the PATH's."""
    override = os.environ.get(BINDIR_ENV)
    if override:
        if not (Path(override) / "initdb").exists():
            raise PostgresUnavailable(f"{BINDIR_ENV}={override} has no initdb. {INSTALL_HINT}")
        return Path(override)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresDatabase:
    server: PostgresServer
    name: str

    @property
    def password(self) -> str:
        return self.server.role_password

    @property
    def url(self) -> str:
        return f"postgresql://{ROLE}@{self.server.host}:{self.server.port}/{self.name}"

    @property
    def url_with_password(self) -> str:
        base = f"{self.server.host}:{self.server.port}/{self.name}"
        return f"postgresql://{ROLE}:{self.password}@{base}"

    @property
    def location(self) -> Any:
        from bot.store import PostgresLocation

        return PostgresLocation(self.url, self.password)

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password}

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, password=self.password, autocommit=True)


@dataclass
class PostgresServer:
    root: Path
    bindir: Path
    port: int
    host: str = "127.0.0.1"
    superuser: str = "postgres"
    superuser_password: str = field(default_factory=lambda: os.urandom(12).hex())
    role: str = ROLE
    role_password: str = field(default_factory=lambda: os.urandom(12).hex())
    startup_seconds: float = 0.0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def _as_owner(self, *argv: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", RUN_AS, "--", *argv]
        return list(argv)

    def _run(self, *argv: str) -> None:
        result = subprocess.run(
            self._as_owner(*argv), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise PostgresUnavailable(
                f"{Path(argv[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout)[-2000:]}\n{log}"
            )

    def start(self) -> None:
        started = time.monotonic()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise PostgresUnavailable(
                    f"no `{RUN_AS}` user to run the test cluster as. {INSTALL_HINT}"
                ) from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
            f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        pwfile.unlink()
        options = " ".join(
            [
                f"-c port={self.port}",
                f"-c listen_addresses={self.host}",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                "-c max_connections=200 -c shared_buffers=32MB",
            ]
        )
        self._run(
            str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir),
            "-l", str(self.log_file), "-o", options,
        )  # fmt: skip
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.role_password}'")
            conn.execute(f"CREATE DATABASE {TEMPLATE} OWNER {ROLE} TEMPLATE template0")
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
                self._run(str(self.bindir / "pg_ctl"), "stop", "-m", "immediate", "-w",
                          "-D", str(self.data_dir))  # fmt: skip

    def admin(self, dbname: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, dbname=dbname, user=self.superuser,
            password=self.superuser_password, autocommit=True,
        )  # fmt: skip

    def create_database(
        self, name: str | None = None, *, template: str | None = None
    ) -> PostgresDatabase:
        name = name or f"t{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {ROLE} TEMPLATE {template or TEMPLATE}')
        return PostgresDatabase(self, name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reachable_by_others(path: Path) -> bool:
    """Every folder from / down to `path` lets other users through (o+x)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _reap_orphans(parent: Path, bindir: Path) -> None:
    """Stop and delete clusters left by test sessions that were killed (their owner
    process is gone), so a SIGKILLed run does not leave a server behind for good."""
    for root in parent.glob(PREFIX + "*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
            os.kill(owner, 0)
            continue  # its session is still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # not ours to judge (unreadable, or another user's process)
        for data in root.glob("*/data"):
            if (data / "postmaster.pid").exists():
                server = PostgresServer(root=data.parent, bindir=bindir, port=0)
                server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway cluster; stop it and delete its folder on exit."""
    bindir = find_bindir()
    parent = Path(tempfile.gettempdir())
    if os.geteuid() == 0 and not _reachable_by_others(parent):
        parent = Path("/tmp")  # a private TMPDIR: the cluster's user could not get in
    _reap_orphans(parent, bindir)
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    root.chmod(0o755)  # the cluster's user must reach its folder inside
    (root / OWNER_FILE).write_text(str(os.getpid()))
    server = None
    try:
        for attempt in range(3):  # a port picked free may be taken before postgres binds it
            server = PostgresServer(root=root / str(attempt), bindir=bindir, port=_free_port())
            server.root.mkdir()
            try:
                server.start()
                break
            except PostgresUnavailable:
                server.stop()
                log = server.log_file
                bind_failed = log.exists() and "could not bind" in log.read_text(errors="replace")
                if attempt == 2 or not bind_failed:
                    raise
        assert server is not None
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session (see the module docstring)."""
    yield from serve(running_postgres_server(), PostgresUnavailable, _started)


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh, empty database for this test, dropped after it."""
    db = postgres_server.create_database()
    yield db
    postgres_server.drop_database(db.name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _started:
        terminalreporter.write_line(
            f"postgresql: test cluster started in {_started[0]:.1f} s (initdb + start)"
        )


def pytest_report_header() -> str:
    try:
        return f"postgresql: {find_bindir()}"
    except PostgresUnavailable:
        return "postgresql: not installed (the store tests will fail: apt-get install postgresql)"

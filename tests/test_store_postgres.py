"""The PostgreSQL store beyond the shared suite (tests/test_store.py runs that on both):
replica-style races on separate connections, `store:` as a URL with the password from
the environment (never in a message), read-only history, a connection that breaks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.config import load_config
from bot.core.errors import ConfigError, StoreError
from bot.core.log import redact
from bot.core.post import Receipt
from bot.store import PostgresLocation, PostgresStore, open_store, read_history

if TYPE_CHECKING:
    from tests.fakes.postgres import PostgresDatabase, PostgresServer

pytest_plugins = ["tests.fakes.postgres"]

SLOT = "2025-01-01T10:00Z"


class SharedClock:
    """One clock for several stores (replicas whose clocks agree)."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def race(stores: list[PostgresStore], attempt: Callable[[PostgresStore], object]) -> list[object]:
    """Run `attempt` on every store at once (one thread each, released together)."""
    barrier = threading.Barrier(len(stores))
    results: list[object] = [None] * len(stores)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = attempt(stores[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_replicas_on_separate_connections_claim_a_slot_once(postgres_db: PostgresDatabase) -> None:
    """Six replicas (six connections) race for each of 20 slots: one winner per slot. The
    dead winner's lease is taken over by exactly one replica, and only after it expired."""
    clock = SharedClock()
    stores = [PostgresStore(postgres_db.location, now=clock) for _ in range(6)]
    try:
        for i in range(20):
            key = f"2025-01-01T{i:02d}:00Z"
            claims = race(stores, lambda s, key=key: s.claim_slot("ada", key, lease_seconds=30))
            assert sum(c is not None for c in claims) == 1, (key, claims)

        # The winner of the last slot "dies"; its lease is live for 30 s.
        key = "2025-01-01T19:00Z"
        clock.now += timedelta(seconds=29)
        assert race(stores, lambda s: s.claim_slot("ada", key)) == [None] * 6
        clock.now += timedelta(seconds=2)
        takers = [c for c in race(stores, lambda s: s.claim_slot("ada", key)) if c is not None]
        assert len(takers) == 1
        [taker] = takers
        assert taker.taken_over and taker.attempts == 2  # type: ignore[attr-defined]
        row = stores[0].slot("ada", key)
        assert row is not None and row.holder == taker.holder  # type: ignore[attr-defined]
        assert stores[0].slot_counts("ada") == {"claimed": 20}
    finally:
        for store in stores:
            store.close()


def test_a_holder_on_another_connection_loses_its_lease_only_after_expiry(
    postgres_db: PostgresDatabase,
) -> None:
    clock = SharedClock()
    with (
        PostgresStore(postgres_db.location, now=clock) as first,
        PostgresStore(postgres_db.location, now=clock) as second,
    ):
        mine = first.claim_slot("ada", SLOT, lease_seconds=10)
        assert mine is not None and first.write_ahead(mine, "Man is a rope.", "Man ")
        clock.now += timedelta(seconds=9)
        assert first.renew(mine, 10)  # renewed at 9 s: live until 19 s
        clock.now += timedelta(seconds=9)
        assert second.claim_slot("ada", SLOT) is None
        clock.now += timedelta(seconds=2)
        theirs = second.claim_slot("ada", SLOT)
        assert theirs is not None and theirs.text == "Man is a rope."  # written ahead
        assert not first.mark_sending(mine)  # the old holder may not send any more
        assert second.mark_sending(theirs)
        assert second.record_post("ada", SLOT, "Man is a rope.", Receipt("outbox", "1")) > 0
        assert first.record_post("ada", SLOT, "late copy", Receipt("outbox", "2")) > 0
        assert [p.text for p in first.recent_posts("ada")] == ["Man is a rope."]


def test_replicas_migrating_together_migrate_once(postgres_db: PostgresDatabase) -> None:
    """Replicas that start together on an empty database: the advisory lock lets one
    migrate; the others find it done."""
    barrier = threading.Barrier(4)
    applied: list[list[str]] = []

    def start() -> None:
        barrier.wait()
        with PostgresStore(postgres_db.location) as store:
            applied.append(store.migrations())

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(applied) == 4 and all(names == applied[0] for names in applied)
    assert applied[0] == ["m001_initial", "m002_mentions", "m003_leases", "m004_persona_health",
                          "m005_post_text"]  # fmt: skip


def test_a_broken_connection_is_replaced(
    postgres_db: PostgresDatabase, postgres_server: PostgresServer
) -> None:
    """The server ended our session (a restart, a failover): the call that finds out
    fails, the next one reconnects."""
    import psycopg

    with PostgresStore(postgres_db.location) as store:
        store.set_cursor("c", "1")
        with postgres_server.admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'revenant'",
                (postgres_db.name,),
            )
        with pytest.raises(psycopg.OperationalError):
            store.get_cursor("c")
        assert store.get_cursor("c") == "1"


def test_read_history_is_read_only(postgres_db: PostgresDatabase) -> None:
    import psycopg

    assert read_history(postgres_db.location, "ada", 5) == []  # no store yet: nothing made
    with PostgresStore(postgres_db.location, read_only=True):
        pass  # a read-only open migrates nothing
    with postgres_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('_migrations')").fetchone() == (None,)
    with open_store(postgres_db.location) as store:
        for i in range(3):
            store.record_post("ada", f"s{i}", f"text {i}", Receipt("outbox", f"ada-{i}"))
    assert read_history(postgres_db.location, "ada", 2) == ["text 2", "text 1"]
    with (
        PostgresStore(postgres_db.location, read_only=True) as reader,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        reader.set_cursor("x", "1")


def test_a_sqlite_daemon_never_imports_psycopg(tmp_path: Path) -> None:
    probe = (
        "import sys, bot.commands.cli, bot.daemon.scheduler\n"
        "from bot.store import open_store\n"
        f"open_store({str(tmp_path / 's.db')!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert result.stdout.strip() == "[]"


def test_without_postgresql_the_tests_fail_saying_how_to_install_it(tmp_path: Path) -> None:
    """Never a silent skip: CI installs the package, so its absence is a failure."""
    repo = Path(__file__).resolve().parents[1]
    test = tmp_path / "test_needs_pg.py"
    test.write_text(
        'pytest_plugins = ["tests.fakes.postgres"]\n\ndef test_needs_pg(postgres_db):\n    pass\n'
    )
    env = {**os.environ, "PYTHONPATH": str(repo), "REVENANT_PG_BINDIR": str(tmp_path / "no")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(test)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout and "skipped" not in result.stdout
    assert "run `apt-get install postgresql`" in result.stdout


def test_url_options_choose_the_schema_for_writes_and_reads(postgres_db: PostgresDatabase) -> None:
    """`?options=-c search_path=...` keeps one deployment's tables in its own schema,
    for the read-only open (`bot preview`) too."""
    with postgres_db.connect() as conn:
        conn.execute("CREATE SCHEMA fleet_a")
    url = postgres_db.url + "?options=-c%20search_path%3Dfleet_a"
    location = PostgresLocation(url, postgres_db.password)
    with PostgresStore(location) as store:
        store.record_post("ada", "s1", "in fleet a", Receipt("outbox", "1"))
    with postgres_db.connect() as conn:
        found = conn.execute("SELECT to_regclass('fleet_a.posts'), to_regclass('public.posts')")
        assert found.fetchone() == ("fleet_a.posts", None)
    assert read_history(location, "ada", 5) == ["in fleet a"]


def test_without_psycopg_a_postgres_store_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails
    with pytest.raises(StoreError) as info:
        open_store("postgresql://rv:pw-not-shown@127.0.0.1:1/rv")
    assert "needs psycopg, which is not installed" in str(info.value)
    assert "requirements.txt" in str(info.value) and "pw-not-shown" not in str(info.value)


# --- store: as a URL, the password from the environment ---------------------------------


def test_location_keeps_the_password_apart() -> None:
    location = PostgresLocation.parse(
        "postgresql://rv:s3cret-pw@db.example:5433/rv?sslmode=require"
    )
    assert location.url == "postgresql://rv@db.example:5433/rv?sslmode=require"
    assert location.password == "s3cret-pw"
    assert str(location) == "postgresql://rv:***@db.example:5433/rv?sslmode=require"
    assert "s3cret-pw" not in repr(location)
    query = PostgresLocation.parse("postgres://rv@h/db?password=p%40ss&application_name=x")
    assert (query.url, query.password) == ("postgres://rv@h/db?application_name=x", "p@ss")
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        PostgresLocation.parse("mysql://rv@h/db")


def test_location_keeps_every_secret_libpq_knows_apart() -> None:
    location = PostgresLocation.parse(
        "postgresql://rv@db/rv?sslmode=verify-full&sslpassword=k3y-pass-phrase"
        "&oauth_client_secret=0auth-s3cret"
    )
    assert location.url == "postgresql://rv@db/rv?sslmode=verify-full"
    shown = str(location)
    assert shown == (
        "postgresql://rv@db/rv?sslmode=verify-full&sslpassword=***&oauth_client_secret=***"
    )
    for secret in ("k3y-pass-phrase", "0auth-s3cret"):
        assert secret not in shown + repr(location)
        assert redact(f"key {secret} refused") == "key *** refused"


def write_store_config(tmp_path: Path, make_persona: Callable[..., Path], store: str) -> Path:
    make_persona("ada")
    path = tmp_path / "config.yaml"
    path.write_text(f"store: '{store}'\npersonas:\n  ada:\n    model: models/ada\n")
    return path


@pytest.mark.parametrize(
    ("store", "env", "url", "password"),
    [
        ("postgresql://rv@db/rv", {}, "postgresql://rv@db/rv", None),
        ("postgresql://rv:${RV_DB_PW}@db/rv", {"RV_DB_PW": "p@ss:w/rd"}, "postgresql://rv@db/rv",
         "p@ss:w/rd"),
        ("${DATABASE_URL}", {"DATABASE_URL": "postgres://u:pw12@h:5432/d"}, "postgres://u@h:5432/d",
         "pw12"),
        ("postgresql://${RV_DB_USER}@${RV_DB_HOST}/rv", {"RV_DB_USER": "u", "RV_DB_HOST": "h"},
         "postgresql://u@h/rv", None),
    ],
)  # fmt: skip
def test_config_store_url(
    tmp_path: Path,
    make_persona: Callable[..., Path],
    store: str,
    env: dict[str, str],
    url: str,
    password: str | None,
) -> None:
    path = write_store_config(tmp_path, make_persona, store)
    config = load_config(path, env=env)
    assert isinstance(config.store, PostgresLocation)
    assert (config.store.url, config.store.password) == (url, password)
    assert password is None or password not in repr(config)
    assert password is None or redact(f"login {password} failed") == "login *** failed"


def test_config_store_path_may_name_variables(
    tmp_path: Path, make_persona: Callable[..., Path]
) -> None:
    path = write_store_config(tmp_path, make_persona, "${STATE_DIR}/bot.db")
    config = load_config(path, env={"STATE_DIR": "/srv/state"})
    assert config.store == Path("/srv/state/bot.db")


@pytest.mark.parametrize(
    ("store", "env", "message"),
    [
        ("postgresql://rv:hunter2-literal@db/rv", {}, "store holds a literal password"),
        ("postgresql://rv@db/rv?password=hunter2-literal", {}, "store holds a literal password"),
        (
            "postgresql://rv@db/rv?sslmode=verify-full&sslpassword=hunter2-literal",
            {},
            "store holds a literal sslpassword",
        ),
        (
            "postgresql://rv@db/rv?oauth_client_secret=hunter2-literal",
            {},
            "store holds a literal oauth_client_secret",
        ),
        ("postgresql://rv:${RV_DB_PW}@db/rv", {}, "store: ${RV_DB_PW} is not set"),
        ("mysql://rv@db/rv", {}, "store: mysql://... is not a PostgreSQL URL"),
    ],
)
def test_config_store_url_errors(
    tmp_path: Path, make_persona: Callable[..., Path], store: str, env: dict[str, str], message: str
) -> None:
    path = write_store_config(tmp_path, make_persona, store)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_wrong_password_never_reaches_a_message_or_a_log(
    postgres_db: PostgresDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + postgres_db.password
    location = PostgresLocation.parse(postgres_db.url.replace("revenant@", f"revenant:{wrong}@"))
    with pytest.raises(StoreError) as info:
        PostgresStore(location)
    text = f"{info.value}"
    assert "cannot connect to the state database" in text
    assert "password authentication failed" in text
    assert "\n" not in text
    assert info.value.__cause__ is None and info.value.__context__ is not None
    for shown in (text, repr(info.value), caplog.text, str(location), repr(location)):
        assert wrong not in shown


@pytest.fixture
def pg_config(
    tmp_path: Path,
    make_persona: Callable[..., Path],
    postgres_db: PostgresDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """REVENANT_CONFIG with `store:` naming the test database; the password in
    RV_DB_PASSWORD, referenced from the URL."""
    url = postgres_db.url.replace("revenant@", "revenant:${RV_DB_PASSWORD}@")
    monkeypatch.setenv("RV_DB_PASSWORD", postgres_db.password)
    return write_store_config(tmp_path, make_persona, url)


def test_bot_status_on_a_postgres_store(pg_config: Path, postgres_db: PostgresDatabase) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["status", "-p", "ada"])
    assert result.exit_code == 0, result.output
    assert "no state yet" in result.output
    config = load_config(pg_config)
    with open_store(config.store) as store:
        claim = store.claim_slot("ada", SLOT)
        assert claim is not None and store.write_ahead(claim, "Man is a rope.", None)
        store.finish_slot(claim, "unknown")
    result = runner.invoke(cli, ["status", "-p", "ada"])
    assert result.exit_code == 0, result.output
    assert f"unknown: {SLOT} (may have been posted; never re-sent)" in result.output
    assert "no state yet" not in result.output
    data = runner.invoke(cli, ["status", "--json"]).output
    assert '"store": "postgresql://revenant:***@127.0.0.1' in data
    assert postgres_db.password not in data + result.output


def test_an_sslpassword_from_the_environment_is_used_and_never_shown(
    pg_config: Path, postgres_db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`?sslpassword=${VAR}` reaches libpq (the store opens) and `bot status` shows it masked."""
    url = postgres_db.url.replace("revenant@", "revenant:${RV_DB_PASSWORD}@")
    pg_config.write_text(pg_config.read_text().replace(url, url + "?sslpassword=${RV_SSL_PW}"))
    monkeypatch.setenv("RV_SSL_PW", "ssl-key-pass-9876")
    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"store": "postgresql://revenant:***@127.0.0.1' in result.output
    assert "sslpassword=***" in result.output
    assert "ssl-key-pass-9876" not in result.output


TINY = Path(__file__).parent / "data" / "tiny_persona"


def test_bot_post_and_preview_through_a_postgres_store(
    tmp_path: Path, postgres_db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path on PostgreSQL: `bot post` claims, writes ahead, publishes to the
    outbox and records; `bot preview` reads that history read-only (the duplicate filter)."""
    monkeypatch.setenv("PGPASSWORD", postgres_db.password)
    (tmp_path / "config.yaml").write_text(
        f"store: {postgres_db.url}\npersonas:\n  tiny:\n    model: {TINY}\n"
        "    prompts: ['The ']\n    include_prompt: true\n    candidates: 32\n"
        "    filters: {min_chars: 10, default_blocklist: false, novelty_words: 8}\n"
    )
    runner = CliRunner()
    result = runner.invoke(cli, ["post", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "posted to outbox" in result.output
    with PostgresStore(postgres_db.location) as store:
        [row] = store.recent_posts("tiny")
        assert row.slot_key.startswith("manual:") and row.publisher == "outbox"
        slot = store.slot("tiny", row.slot_key)
        assert slot is not None and (slot.status, slot.text, slot.sends) == ("posted", row.text, 1)
    assert read_history(postgres_db.url, "tiny", 5) == [row.text]
    preview = runner.invoke(cli, ["preview", "-n", "2", "--seed", "5", "--all"])
    assert preview.exit_code == 0, preview.output
    assert "duplicate=1" in preview.output  # the same seed meets the posted text again


def test_bot_status_with_a_wrong_password_is_one_line(
    pg_config: Path, postgres_db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + postgres_db.password
    monkeypatch.setenv("RV_DB_PASSWORD", wrong)
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the state database" in lines[0], lines
    assert wrong not in result.output and "***" in result.output

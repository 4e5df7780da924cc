"""A real Mastodon-shaped HTTP server on 127.0.0.1 for tests: mastodon-mock, in a thread.

mastodon-mock (PyPI) is a FastAPI app of the Mastodon client API backed by in-memory
SQLite, with idempotency keys, notifications, pagination and a control plane
(`/api/v1/_mock/*`) for resets and fault injection. This module runs it with uvicorn on
a free loopback port and wraps it in `MastodonServer`, so our code talks to it through
the real `mastodon.Mastodon` client: nothing is patched.

Load it as a pytest plugin, in a test module or once in tests/conftest.py (a plugin is
registered once, so every module shares one server):

    pytest_plugins = ["tests.fakes.mastodon_server"]

    def test_something(mastodon_server):
        client = make_client(mastodon_server, mastodon_server.bot.token)
        ...

`mastodon_server` is function-scoped: the session's server, reset to the seed before
the test (tables recreated, fault rules cleared) and drained after it (no request of
this test still running when the next one starts). `mastodon_server_session` is the
same server without the reset, for a soak test that wants state to pile up. Outside
pytest (a script, a benchmark), `with running_mastodon_server() as server:` does the same.

Seeded accounts (tokens are fixtures, not credentials):

    server.bot     @revenant  our persona's account (bot flag off until `bot setup`)
    server.alice   @alice     a human who mentions us
    server.bob     @bob       another human
    server.robot   @robot     a bot account (bot=True), for the no-bot-loop rules
    remote @dave@remote.example exists for `@user@domain` mentions, has no token

Recipes:

    acct = server.create_account("carol", note="#nobot", bot=False)   # new account + token
    st = server.post_as(server.alice, "hello", visibility="public")    # a status by someone else
    st = server.mention(server.alice, "write me a poem")    # "@revenant write me a poem"
    server.statuses()            # our account's statuses, newest first, all visibilities
    server.statuses(server.alice)
    server.inject_error(500, count=1)                       # next POST /api/v1/statuses -> 500
    server.inject_rate_limit(reset_in_seconds=120)          # -> 429 + X-RateLimit-* headers
    server.inject_rate_limit(reset_in_seconds=120, shape="mastodon")  # ISO reset, real shape
    server.inject_late_response(1.0)    # the server posts at once but answers 1 s later: a
                                        # client with a shorter timeout sees a timeout
    server.inject_delay(1.0)            # the server waits 1 s before handling the request
    server.inject_stall(2.0)            # the server reads the request, stalls 2 s, then
                                        # applies it even though the client gave up (a
                                        # paused worker): "applied late"
    server.ignore_idempotency_keys()    # from now on the key is dropped before the app sees
                                        # it, as some servers of the Mastodon API do
    server.inject_error(200, path="/api/v2/instance", methods=["GET"], body={...})
                                        # serve a real server's response shape instead
    server.clear_faults()

Fault rules match `path` (exact, or a glob with `*`) and `methods`, fire `count` times
(None = until cleared) and never touch `/api/v1/_mock/*`.

Gaps of mastodon-mock 0.6.1 against a real Mastodon, which tests cover with canned
response shapes instead:
- `X-RateLimit-*` headers only with its limiter on or a `ratelimit` fault, and its
  `X-RateLimit-Reset` is epoch seconds where Mastodon sends ISO 8601.
- A spoiler text does not force `sensitive`; URLs count at full length in its 422 length
  check (Mastodon counts 23); status HTML has no mention or hashtag markup; the instance
  limit is a constant 500.
- Idempotency keys never expire (Mastodon forgets them after one hour); a server that
  ignores them altogether is `ignore_idempotency_keys()`.
- Its `timeout` fault holds the request >= 30 s before running it, which would leak into
  the next test; its `latency` fault delays the request before the handler, so a client
  that gave up never creates anything. Neither can stage "created, answer lost": this
  module's `inject_late_response` (an ASGI wrapper) does.
- Its own test helpers (`MockServer.reset`, `FaultHandle`) need `httpx2`, which the
  package does not install; this module uses `requests` (already a Mastodon.py dependency).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import fnmatch
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import uvicorn
from mastodon import Mastodon
from mastodon_mock.app import create_app
from mastodon_mock.config import (
    DatabaseConfig,
    MastodonMockConfig,
    SeedAccount,
    SeedConfig,
    StreamingConfig,
)
from mastodon_mock.db.base import _tune_sqlite_connection, make_session_factory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

BOT_USERNAME = "revenant"
BOT_TOKEN = "revenant-test-token"  # a fixture for the mock, not a credential
_CONTROL = "/api/v1/_mock"


@dataclass(frozen=True)
class MockAccount:
    """An account on the mock: its id (as a string, like the API), username and token."""

    id: str
    username: str
    token: str | None

    @property
    def acct(self) -> str:
        return self.username


SEED = SeedConfig(
    accounts=[
        SeedAccount(username=BOT_USERNAME, display_name="Revenant", access_token=BOT_TOKEN),
        SeedAccount(username="alice", display_name="Alice", access_token="alice-test-token"),
        SeedAccount(username="bob", display_name="Bob", access_token="bob-test-token"),
        SeedAccount(
            username="robot", display_name="Robot", bot=True, access_token="robot-test-token"
        ),
        SeedAccount(username="dave", display_name="Dave", domain="remote.example"),
    ],
)


def make_client(server: MastodonServer, token: str | None, *, timeout: float = 5.0) -> Mastodon:
    """A real `mastodon.Mastodon` pointed at the server (offline construction, throw on 429)."""
    return Mastodon(
        access_token=token,
        api_base_url=server.base_url,
        request_timeout=timeout,
        ratelimit_method="throw",
        version_check_mode="none",
    )


def _unpooled(app: Any) -> None:
    """Give mastodon-mock an engine without a connection limit, on the same database file.

    Its default pool holds 15 SQLite connections and waits 30 s for a free one. Several of
    its handlers are `async def` and query on the event loop, while the request's session
    is only closed (its connection returned) by a task that same loop runs. Once requests
    that clients timed out on pile up, the pool runs dry, the loop blocks in a handler
    waiting for a connection that only the loop can free, and every request stalls for
    30 s at a time: the loopback server's "hang" (1 CI run in 3; reproduced by ten
    clients with short timeouts). Without a pool each session opens its own connection,
    which SQLite's file locking coordinates (WAL, 5 s busy timeout, as before).
    """
    pooled = app.state.engine
    engine = create_engine(pooled.url, poolclass=NullPool,
                           connect_args={"check_same_thread": False})  # fmt: skip
    _tune_sqlite_connection(engine)
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.pooled_engine = pooled  # keeps the temp file; disposed (deleted) with the app


def _finish_regardless(receive: Any) -> Any:
    """The request's body, then silence: the app never hears that the client hung up.

    Without this, a client that times out mid-request makes Starlette cancel the app
    (BaseHTTPMiddleware, which mastodon-mock uses three times, cancels on a disconnect),
    and FastAPI then skips closing the request's DB session. Each such request kept one
    of mastodon-mock's 15 pooled SQLite connections for good; after 15 client timeouts
    every request waited 30 s for a connection (the loopback server's "hang", 1 CI run in
    3). A real server finishes a request the client gave up on; so does this one now.
    """
    body_done = False

    async def patient_receive() -> Any:
        nonlocal body_done
        if body_done:
            await asyncio.Event().wait()  # cancelled when the response is complete
        message = await receive()
        if message["type"] == "http.disconnect":
            body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if not message.get("more_body"):
            body_done = True
        return message

    return patient_receive


class _LateResponses:
    """ASGI wrapper for the faults mastodon-mock cannot stage itself.

    Late response: for matching requests, run the app fully, then hold the answer. This
    is "the server accepted the post but the client never heard back": the status is
    committed at once, and the response leaves `delay` seconds later, after a client with
    a shorter timeout has given up. mastodon-mock's own `latency` fault delays the
    request *before* the handler instead, so a client that gives up posts nothing.

    Stall: read the whole request, wait `delay` seconds, then run the app on it even if
    the client has gone: a server whose workers were paused past the client's timeout
    and that applies the request late.

    Ignoring keys: drop the `Idempotency-Key` header before the app sees it.

    Media processing (mastodon-mock stores an upload and answers 200 with its URL at
    once): with `media_polls` set, an upload is answered 202 with `url: null`, as
    Mastodon answers while it transcodes, and the next `media_polls` GETs of that
    attachment answer 206 with `url: null`; then it is ready (200, with its URL).
    `uploads` counts media uploads the app stored.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rules: list[dict[str, Any]] = []  # {path, methods, delay, remaining, kind}
        self.ignore_keys = False
        self.media_polls: int | None = None
        self.uploads = 0
        self._processing: dict[str, int] = {}  # media id -> GETs still answered "not ready"
        self._lock = threading.Lock()

    def _take(self, method: str, path: str) -> tuple[str, float] | None:
        with self._lock:
            for rule in self.rules:
                if method in rule["methods"] and fnmatch.fnmatchcase(path, rule["path"]):
                    if rule["remaining"] is not None:
                        rule["remaining"] -= 1
                        if rule["remaining"] <= 0:
                            self.rules.remove(rule)
                    return str(rule.get("kind", "late")), float(rule["delay"])
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.ignore_keys:
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"idempotency-key"]
            scope = {**scope, "headers": headers}
        receive = _finish_regardless(receive)
        taken = self._take(scope["method"], scope["path"])
        if taken is None and scope["path"].startswith(("/api/v1/media", "/api/v2/media")):
            await self._media(scope, receive, send)
            return
        if taken is None:
            await self.app(scope, receive, send)
            return
        kind, delay = taken
        if kind == "stall":
            await self._stalled(scope, receive, send, delay)
            return

        async def late_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(delay)
            await send(message)

        await self.app(scope, receive, late_send)

    async def _media(self, scope: Any, receive: Any, send: Any) -> None:
        """An upload or a look at an attachment, answered as a processing server does."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        status = int(start.get("status", 500))
        upload = scope["method"] == "POST" and scope["path"] in ("/api/v1/media", "/api/v2/media")
        if status == 200 and scope["method"] in ("GET", "POST"):
            entity = json.loads(body)
            media_id = str(entity.get("id"))
            with self._lock:
                if upload:
                    self.uploads += 1
                    if self.media_polls is not None:
                        self._processing[media_id] = self.media_polls
                        status = 202
                elif self._processing.get(media_id, 0) > 0:
                    self._processing[media_id] -= 1
                    status = 206
                processing = status in (202, 206)
            if processing:
                entity["url"] = entity["preview_url"] = None
                body = json.dumps(entity).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _stalled(self, scope: Any, receive: Any, send: Any, delay: float) -> None:
        body: list[Any] = []
        while True:
            message = await receive()
            body.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await asyncio.sleep(delay)

        async def replay() -> Any:
            if body:
                return body.pop(0)
            return {"type": "http.disconnect"}

        async def tolerant_send(message: Any) -> None:
            with contextlib.suppress(Exception):  # the client may have gone: still applied
                await send(message)

        await self.app(scope, replay, tolerant_send)


class MastodonServer:
    """A running mastodon-mock on 127.0.0.1: accounts, statuses, resets and faults."""

    def __init__(self, config: MastodonMockConfig | None = None) -> None:
        self.config = config or MastodonMockConfig(
            database=DatabaseConfig(path=":memory:"),
            seed=SEED,
            streaming=StreamingConfig(heartbeat_seconds=0.2),  # short, so streams close fast
        )
        self.app = create_app(self.config)
        _unpooled(self.app)
        self._late = _LateResponses(self.app)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._late,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                # uvicorn closes an idle connection after 5 s by default; a client that
                # sends on it at that instant gets "connection aborted" for a POST, which
                # it may not retry. Tests pause longer than 5 s between calls (a soak).
                timeout_keep_alive=120,
            )
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http = requests.Session()
        self.base_url = ""
        self._accounts: dict[str, MockAccount] = {}

    # -- lifecycle --

    def start(self, timeout: float = 10.0) -> MastodonServer:
        self._thread = threading.Thread(target=self._serve, name="mastodon-mock", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mastodon-mock did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._load_seeded_accounts()
        return self

    def _serve(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve()

        asyncio.run(serve())

    def dump_state(self, why: str) -> None:
        """Print what the server is doing (threads, asyncio tasks, DB pool) to stderr:
        called when a control call times out, so a hang explains itself in the log."""
        print(f"\n=== mastodon-mock: {why}", file=sys.stderr)
        engine = getattr(self.app.state, "engine", None)
        if engine is not None:
            print(f"pool: {engine.pool.status()}", file=sys.stderr)
        print(f"requests in flight: {len(self._server.server_state.tasks)}", file=sys.stderr)
        loop = self._loop
        if loop is not None:
            for task in asyncio.all_tasks(loop):
                print(f"--- task {task.get_name()}", file=sys.stderr)
                task.print_stack(limit=12, file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http.close()

    def reset(self) -> None:
        """Back to the seed: all tables recreated (new ids), fault rules cleared."""
        self.clear_faults()
        self.control("POST", "/reset")
        self._load_seeded_accounts()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until no request is being handled (e.g. one a client timed out on)."""
        deadline = time.monotonic() + timeout
        while self._server.server_state.tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    # -- control plane --

    def control(self, method: str, path: str, json: Any = None) -> Any:
        """Call a mock-only endpoint under /api/v1/_mock (reset, faults, dev_user, login)."""
        # 30 s: under a soak the server thread shares the GIL with a daemon waking every
        # second, and a control call once waited more than 10 s for its turn in CI.
        # A fresh connection each time (Connection: close): a control call never lands
        # on a kept-alive connection the server is closing.
        try:
            response = self._http.request(
                method,
                self.base_url + _CONTROL + path,
                json=json,
                timeout=30,
                headers={"Connection": "close"},
            )
        except requests.Timeout:
            self.dump_state(f"{method} {path} timed out")
            raise
        response.raise_for_status()
        return response.json()

    def inject(
        self,
        effect: dict[str, Any],
        *,
        path: str = "/api/v1/statuses",
        methods: list[str] | None = None,
        count: int | None = 1,
    ) -> str:
        """Add a raw fault rule (see mastodon_mock.faults); returns its id."""
        rule = {
            "match": {"path": path, "methods": methods if methods is not None else ["POST"]},
            "effect": effect,
            "count": count,
        }
        return str(self.control("POST", "/faults", rule)["id"])

    def inject_error(
        self,
        status: int,
        *,
        path: str = "/api/v1/statuses",
        methods: list[str] | None = None,
        count: int | None = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        """The next `count` matching requests get `status` (and `body`) without being run."""
        effect: dict[str, Any] = {"type": "status", "status": status, "headers": headers or {}}
        if body is not None:
            effect["body"] = body
        return self.inject(effect, path=path, methods=methods, count=count)

    def inject_rate_limit(
        self,
        *,
        reset_in_seconds: float = 300,
        shape: str = "mock",
        path: str = "/api/v1/statuses",
        methods: list[str] | None = None,
        count: int | None = 1,
    ) -> str:
        """429 with rate-limit headers, `shape` "mock" or "mastodon".

        "mock": X-RateLimit-Reset as epoch seconds plus Retry-After (mastodon-mock's own).
        "mastodon": what Rack::Attack in Mastodon sends: X-RateLimit-Reset as ISO 8601 with
        microseconds and no Retry-After (the mock always adds one, so it is sent empty).
        """
        reset_at = time.time() + reset_in_seconds
        headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0"}
        if shape == "mock":
            headers["X-RateLimit-Reset"] = str(int(reset_at))
            headers["Retry-After"] = str(int(reset_in_seconds))
        elif shape == "mastodon":
            iso = datetime.fromtimestamp(reset_at, tz=UTC).isoformat(timespec="microseconds")
            headers["X-RateLimit-Reset"] = iso.replace("+00:00", "Z")
            headers["Retry-After"] = ""
        else:
            raise ValueError(f"unknown rate-limit shape {shape!r}")
        effect = {"type": "ratelimit", "status": 429, "headers": headers}
        return self.inject(effect, path=path, methods=methods, count=count)

    def inject_delay(
        self,
        seconds: float,
        *,
        path: str = "/api/v1/statuses",
        methods: list[str] | None = None,
        count: int | None = 1,
    ) -> str:
        """Hold matching requests for `seconds` before handling them (a slow server).

        A client that times out first has disconnected by then, so nothing is created
        (uvicorn logs a `ClientDisconnect`). For "created, but the answer never came",
        use `inject_late_response`.
        """
        effect = {"type": "latency", "delay_ms": int(seconds * 1000)}
        return self.inject(effect, path=path, methods=methods, count=count)

    def inject_late_response(
        self,
        seconds: float,
        *,
        path: str = "/api/v1/statuses",
        methods: list[str] | None = None,
        count: int | None = 1,
    ) -> None:
        """Handle matching requests at once, but send the answer `seconds` later.

        With a client timeout shorter than `seconds` this is the hazard idempotency keys
        exist for: the server created the status, the client saw a timeout.
        """
        rule = {"path": path, "methods": methods or ["POST"], "delay": seconds, "remaining": count}
        with self._late._lock:
            self._late.rules.append(rule)

    def inject_stall(
        self,
        seconds: float,
        *,
        path: str = "/api/v1/statuses",
        methods: list[str] | None = None,
        count: int | None = 1,
    ) -> None:
        """Read matching requests, stall `seconds`, then apply them even if the client
        has given up (a server whose workers were paused past the client timeout)."""
        rule = {"path": path, "methods": methods or ["POST"], "delay": seconds,
                "remaining": count, "kind": "stall"}  # fmt: skip
        with self._late._lock:
            self._late.rules.append(rule)

    def ignore_idempotency_keys(self, ignore: bool = True) -> None:
        """Drop `Idempotency-Key` from every request (until `clear_faults`/`reset`)."""
        self._late.ignore_keys = ignore

    def process_media(self, polls: int = 2) -> None:
        """From now on, uploads answer 202 and are ready only after `polls` looks (206)."""
        self._late.media_polls = polls

    @property
    def media_uploads(self) -> int:
        """Media uploads stored since the last reset (orphans included)."""
        return self._late.uploads

    def clear_faults(self) -> None:
        """Drop every fault rule, the mock's and the wrapper's (late, stall, keys, media
        processing), and zero the upload count."""
        self.control("DELETE", "/faults")
        with self._late._lock:
            self._late.rules.clear()
            self._late.media_polls = None
            self._late.uploads = 0
            self._late._processing.clear()
        self._late.ignore_keys = False

    # -- accounts and statuses --

    @property
    def bot(self) -> MockAccount:
        return self._accounts[BOT_USERNAME]

    @property
    def alice(self) -> MockAccount:
        return self._accounts["alice"]

    @property
    def bob(self) -> MockAccount:
        return self._accounts["bob"]

    @property
    def robot(self) -> MockAccount:
        return self._accounts["robot"]

    def account(self, username: str) -> MockAccount:
        return self._accounts[username]

    def create_account(
        self,
        username: str,
        *,
        display_name: str | None = None,
        note: str | None = None,
        bot: bool = False,
    ) -> MockAccount:
        """A new local account with a token; `note` and `bot` set through the real API."""
        created = self.control(
            "POST", "/dev_user", {"username": username, "display_name": display_name or username}
        )
        account = MockAccount(str(created["id"]), username, str(created["access_token"]))
        if note is not None or bot:
            make_client(self, account.token).account_update_credentials(note=note, bot=bot)
        self._accounts[username] = account
        return account

    def client(self, account: MockAccount | None = None) -> Mastodon:
        """A client logged in as `account` (default: our bot account)."""
        return make_client(self, (account or self.bot).token)

    def post_as(self, account: MockAccount, text: str, **kwargs: Any) -> Any:
        """Post a status as another account; kwargs go to `status_post`."""
        return self.client(account).status_post(text, **kwargs)

    def mention(self, account: MockAccount, text: str, **kwargs: Any) -> Any:
        """`account` mentions our bot: posts "@revenant <text>" (public unless told)."""
        kwargs.setdefault("visibility", "public")
        return self.post_as(account, f"@{BOT_USERNAME} {text}", **kwargs)

    def statuses(self, account: MockAccount | None = None) -> list[Any]:
        """Every status of `account` (default: our bot), newest first, read by its owner."""
        owner = account or self.bot
        client = self.client(owner)
        page = client.account_statuses(owner.id, limit=40)
        result: list[Any] = []
        while page:
            result.extend(page)
            page = client.fetch_next(page)
        return result

    def _load_seeded_accounts(self) -> None:
        self._accounts = {}
        for seeded in self.config.seed.accounts:
            if seeded.access_token is None:
                continue
            me = make_client(self, seeded.access_token).account_verify_credentials()
            self._accounts[seeded.username] = MockAccount(
                str(me["id"]), seeded.username, seeded.access_token
            )


@contextlib.contextmanager
def running_mastodon_server(config: MastodonMockConfig | None = None) -> Iterator[MastodonServer]:
    """Start a server on a free loopback port, stop it on exit."""
    server = MastodonServer(config).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mastodon_server_session() -> Iterator[MastodonServer]:
    """One mastodon-mock for the whole session; state accumulates (no reset)."""
    with running_mastodon_server() as server:
        yield server


@pytest.fixture
def mastodon_server(mastodon_server_session: MastodonServer) -> Iterator[MastodonServer]:
    """The session's mastodon-mock, reset to the seed before the test, drained after."""
    server = mastodon_server_session
    server.reset()
    yield server
    server.drain()
    server.clear_faults()

"""What only PostgreSQL does: NOTIFY with each commit, one listening connection per
process, and riding out connections the server drops.

A write transaction that appends events to a run another process watches sends `run_id
seq` (the run's last seq) on `smithers_events`; each command (`Tx.touch`) sends the run id
on `smithers_commands`. NOTIFY is delivered at commit and only if the transaction commits,
so a listener never hears of an event it cannot read. A process keeps one connection
listening (a thread, `Listener`) and calls back whoever asked; the callers' polls stay as
the safety net, and a reconnect is reported too, since notices sent while it was away are
lost.

A committing NOTIFY takes a lock that every other committing NOTIFY on the database waits
for, so events are announced only for runs someone watches: a process following a run it
does not drive says so on `smithers_watch` (`announce_watch`) when it starts and every
`WATCH_RENEW_S`; the writers remember it for `WATCH_TTL_S` (`Watched`). A writer that
starts listening (or listens again) asks every watcher to say so at once (`ASK`), and
announces every run meanwhile (`ASK_WINDOW_S`).
"""

from __future__ import annotations

import logging
import select
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from ..clock import STALE_AFTER_MS
from . import statements

if TYPE_CHECKING:  # psycopg is an optional dependency (the `postgres` extra)
    import psycopg

    from .base import Store

logger = logging.getLogger("smithers.store.postgres")

T = TypeVar("T")

EVENTS = "smithers_events"
COMMANDS = "smithers_commands"
WATCH = "smithers_watch"
WATCH_RENEW_S = 10.0
WATCH_TTL_S = 30.0
ASK = "*"  # on `smithers_watch`: who watches what?
ASK_WINDOW_S = 1.0
# A dropped connection is retried after this, doubling up to the cap.
BACKOFF_S = (0.05, 2.0)
# How often the listening thread looks up from its socket to see whether it should stop.
STOP_CHECK_S = 0.5
# How many times a unit of store work is tried again after the connection dropped.
RETRIES = 5
# `Store.run` calls at once (each a worker thread holding a connection), and the
# connections the pool keeps open: those calls' and a few for other threads (heartbeat,
# tasks' log lines). Past the pool's size each call would connect anew: a server process
# forked per transaction.
STORE_THREADS = 16
POOL_SIZE = STORE_THREADS + 4

# Reserve the run's next seqs and insert its events under them, in one statement: bumping
# `last_seq` locks the run's row until commit, so appends to one run commit in seq order.
# A NOTIFY payload is a run id (at most 128 characters, the column's width) and a seq: far
# below the 8000 bytes NOTIFY takes.
_APPEND = (
    "WITH bumped AS (UPDATE _smithers_runs SET last_seq = last_seq + :n WHERE run_id = :rid "
    "RETURNING last_seq{notify}) "
    "INSERT INTO _smithers_events (run_id, seq, timestamp_ms, type, payload_json) "
    "SELECT :rid, bumped.last_seq - :n + e.ord, :now, e.type, e.payload "
    "FROM bumped, unnest(CAST(:types AS text[]), CAST(:payloads AS text[])) "
    "WITH ORDINALITY AS e(type, payload, ord) "
    "RETURNING seq"
)
_APPEND_ANNOUNCED = _APPEND.format(notify=f", pg_notify('{EVENTS}', :rid || ' ' || last_seq)")
_APPEND_QUIET = _APPEND.format(notify="")


def append_events(
    conn: Connection,
    run_id: str,
    types: list[str],
    payloads: list[str],
    now: int,
    *,
    announce: bool,
) -> int:
    """Append events (their types and JSON payloads) to the run under its next seqs; the
    last one. With `announce`, listeners hear of them at commit (same round trip)."""
    params = {"rid": run_id, "n": len(types), "now": now, "types": types, "payloads": payloads}
    cursor = statements.execute(conn, _APPEND_ANNOUNCED if announce else _APPEND_QUIET, params)
    seqs = [row[0] for row in cursor.fetchall()]
    cursor.close()
    if len(seqs) != len(types):
        raise LookupError(f"run {run_id!r} not found")
    return int(max(seqs))


def notify_command(conn: Connection, run_id: str) -> None:
    """Tell the run's owner, wherever it runs, that a command on the run committed."""
    statements.execute(conn, f"SELECT pg_notify('{COMMANDS}', :rid)", {"rid": run_id}).close()


def announce_watch(conn: Connection, run_id: str) -> None:
    """Ask the run's writers, wherever they run, to announce its events for a while
    (`ASK` instead of a run id: ask the watchers to announce theirs)."""
    statements.execute(conn, f"SELECT pg_notify('{WATCH}', :rid)", {"rid": run_id}).close()


class Watched:
    """The runs whose events this process announces: those another process said it watches
    within `WATCH_TTL_S`, and every run for `ASK_WINDOW_S` after listening (re)starts,
    while the watchers answer the `ASK` that follows."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._all_until = 0.0

    def __contains__(self, run_id: str) -> bool:
        now = time.monotonic()
        return now < self._all_until or now < self._until.get(run_id, 0.0)

    def heard(self, notice: Notice) -> None:
        now = time.monotonic()
        if notice.kind == "watch" and notice.run_id != ASK:
            if len(self._until) > 10_000:  # forget the expired
                self._until = {k: t for k, t in self._until.items() if t > now}
            self._until[notice.run_id] = now + WATCH_TTL_S

    def all_for_a_while(self) -> None:
        self._all_until = time.monotonic() + ASK_WINDOW_S


@dataclass(frozen=True, slots=True)
class Notice:
    """What the listener heard: an event (`seq` set), a command, a watch, or `reconnected`."""

    kind: str  # "event", "command", "watch" or "reconnected"
    run_id: str = ""
    seq: int = -1
    pid: int = 0  # the server process of the connection that committed it


NoticeFn = Callable[[Notice], None]


def parse(channel: str, payload: str, pid: int = 0) -> Notice | None:
    if channel in (COMMANDS, WATCH):
        return Notice("command" if channel == COMMANDS else "watch", payload, pid=pid)
    if channel == EVENTS:
        run_id, _, seq = payload.rpartition(" ")
        if run_id and seq.isdigit():
            return Notice("event", run_id, int(seq), pid)
    return None


def from_elsewhere(engine: Engine, fn: NoticeFn) -> NoticeFn:
    """`fn`, called only with notices of other engines' commits: the engine's own reach
    its store's subscribers and runtime through the bus already."""
    own = _pids.setdefault(engine, set())

    def call(notice: Notice) -> None:
        if notice.pid not in own:
            fn(notice)

    return call


class Listener:
    """One connection LISTENing on both channels, in a thread, reconnecting by itself with
    backoff; calls each callback (in its thread) with every `Notice`."""

    def __init__(self, key: str, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self.key = key
        self._connect = connect
        self._lock = threading.Lock()
        self._callbacks: dict[object, NoticeFn] = {}
        self._stop: threading.Event | None = None  # the running thread's
        self.connected = threading.Event()
        self.connections = 0  # how many times it has connected (tests, metrics)
        self.pid: int | None = None  # the listening connection's server process

    def add(self, fn: NoticeFn) -> object:
        token = object()
        with self._lock:
            self._callbacks[token] = fn
            if self._stop is None:
                self._stop = threading.Event()
                threading.Thread(
                    target=self._run, args=(self._stop,), name="smithers-listener", daemon=True
                ).start()
        return token

    def remove(self, token: object) -> None:
        """Drop a callback; after the last, the thread stops (within `STOP_CHECK_S`,
        not waited for: this may run on an event loop)."""
        with self._lock:
            self._callbacks.pop(token, None)
            if not self._callbacks and self._stop is not None:
                self._stop.set()
                self._stop = None

    def _dispatch(self, notice: Notice) -> None:
        with self._lock:
            callbacks = list(self._callbacks.values())
        for fn in callbacks:
            try:
                fn(notice)
            except Exception:
                logger.exception("a notice callback failed")

    def _run(self, stop: threading.Event) -> None:
        delay = BACKOFF_S[0]
        while not stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {EVENTS}")
                    conn.execute(f"LISTEN {COMMANDS}")
                    conn.execute(f"LISTEN {WATCH}")
                    self.pid = conn.info.backend_pid
                    self.connections += 1
                    self.connected.set()
                    delay = BACKOFF_S[0]
                    self._dispatch(Notice("reconnected"))
                    while not stop.is_set():
                        for note in conn.notifies(timeout=STOP_CHECK_S):
                            notice = parse(note.channel, note.payload, note.pid)
                            if notice is not None:
                                self._dispatch(notice)
            except Exception as exc:
                self.connected.clear()
                if stop.is_set():
                    return
                logger.warning("listening connection lost (%s); again in %.2f s", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_S[1])
        self.connected.clear()


_listeners: dict[str, Listener] = {}
_listeners_guard = threading.Lock()


def listener(engine: Engine) -> Listener:
    """This process's listener for the engine's database (one per URL)."""
    key = engine.url.render_as_string(hide_password=False)
    with _listeners_guard:
        found = _listeners.get(key)
        if found is None:
            cargs, cparams = engine.dialect.create_connect_args(engine.url)

            def connect() -> psycopg.Connection[Any]:
                import psycopg

                return psycopg.connect(*cargs, **cparams, autocommit=True)

            found = _listeners[key] = Listener(key, connect)
        return found


# -- connections the server dropped -------------------------------------------------------


# The server processes of each engine's open connections, so its own notices are told
# apart (a pid left behind by a missed close only costs a poll's delay).
_pids: dict[Engine, set[int]] = {}


def setup_engine(engine: Engine) -> None:
    """Hand out no pooled connection the server has closed (restart, `pg_terminate_backend`).

    Such a connection has the server's goodbye waiting on its socket, so a look costs no
    round trip, unlike a ping; the pool then opens a fresh one in its place. And note the
    server process of each connection (`from_elsewhere`).
    """
    own = _pids.setdefault(engine, set())

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        record.info["pid"] = dbapi_conn.info.backend_pid
        own.add(record.info["pid"])
        # A process that stalls inside a transaction (SIGSTOP, a paused VM) keeps its rows
        # locked, and a run's adopter would wait on it: the server ends such a session
        # once it idled as long as a heartbeat may, and frees the rows.
        dbapi_conn.execute(f"SET idle_in_transaction_session_timeout = {STALE_AFTER_MS}")
        dbapi_conn.commit()

    @sa_event.listens_for(engine, "close")
    def _on_close(_dbapi_conn: Any, record: Any) -> None:
        own.discard(record.info.get("pid"))

    @sa_event.listens_for(engine, "invalidate")
    def _on_invalidate(_dbapi_conn: Any, record: Any, _exc: Any) -> None:
        own.discard(record.info.get("pid"))

    @sa_event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_conn.closed or dbapi_conn.broken:
            raise sa.exc.DisconnectionError("the connection was closed")
        try:
            readable, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
        except Exception as exc:  # a socket psycopg has closed already
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if readable:  # an idle connection is sent nothing unless the server is leaving
            raise sa.exc.DisconnectionError("the server closed the connection")


def is_disconnect(exc: BaseException) -> bool:
    """Whether `exc` says the connection dropped before the transaction committed."""
    psycopg = sys.modules.get("psycopg")
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if (
            psycopg is not None
            and isinstance(seen, psycopg.OperationalError)
            and (seen.sqlstate is None or seen.sqlstate.startswith(("08", "57P")))
        ):
            return True
        if isinstance(seen, sa.exc.DisconnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def committed(store: Store, rows: list[dict[str, Any]]) -> bool:
    """Whether a transaction that lost its connection at COMMIT committed: its first event
    is in the log (a rolled-back seq is taken again, but never by the same payload). One
    without events counts as rolled back, and is tried again: such writes (heartbeats,
    markers) come to the same thing twice."""
    if not rows:
        return False
    with store.read() as conn:
        found = statements.fetch_one(
            conn,
            "SELECT payload_json FROM _smithers_events WHERE run_id = :run_id AND seq = :seq",
            {"run_id": rows[0]["run_id"], "seq": rows[0]["seq"]},
        )
    return found is not None and found["payload_json"] == rows[0]["payload_json"]


def retrying(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn` (store work of whole transactions) again when the connection dropped
    under it: the transaction rolled back, so running it again is running it once."""
    delay = BACKOFF_S[0]
    for _ in range(RETRIES):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_disconnect(exc):
                raise
            logger.warning("database connection lost (%s); trying again", exc)
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])
    return fn(*args, **kwargs)

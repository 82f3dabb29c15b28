"""JSON-RPC 2.0 over newline-delimited JSON on an :class:`~overseer.runtime.process.AgentProcess`.

Written for ``codex app-server`` (see ``/work/shared/reference/agent-protocols.md``), which:

* writes one JSON object per line and **omits** ``"jsonrpc": "2.0"`` (so it is not required here);
* sends *server requests* (approvals, questions) whose integer ids start at 0 and so collide with
  our own request ids. Messages are therefore classified **by shape**, never by id alone:

  =====================================================  ==============================
  shape                                                   kind
  =====================================================  ==============================
  ``method`` (str) and ``id`` (int/str, not null)         server request -> ``on_request``
  ``method`` (str), no ``id``                             notification -> ``on_notification``
  ``id``, ``result`` or ``error``, no ``method``          response to one of our requests
  anything else, non-JSON, non-object, oversized          malformed -> logged, counted, skipped
  =====================================================  ==============================

Nothing a peer sends is fatal: malformed lines, responses to ids we never sent and responses that
arrive after their request timed out are logged at WARNING, counted in :attr:`JsonRpcConnection.stats`
and dropped.

Delivery: responses resolve their request future directly in the stdout reader; notifications,
server requests and malformed reports go through one FIFO dispatcher task, so handlers see them in
wire order, and a slow (or blocking) handler can never stop responses from arriving (a handler may
itself ``await conn.request(...)``). When the process exits, every pending request fails at once with
:class:`RpcConnectionClosed` (message: exit code/signal and the stderr tail), the dispatcher drains
what was already read, and then ``on_closed(ProcessExit)`` is awaited, always as the last callback.

Wiring (the process must be created with the connection's line handlers)::

    conn = JsonRpcConnection(on_notification=..., on_request=..., on_closed=..., name="codex")
    proc = AgentProcess(argv, env=env, cwd=cwd, on_line=conn.feed_line,
                        on_malformed=conn.feed_oversized, line_limit_bytes=config.line_limit_bytes)
    await proc.start()
    conn.attach(proc)
    result = await conn.request("initialize", {...}, timeout_s=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from overseer import jsoncodec
from overseer.queues import Inbox
from overseer.runtime.agent import AgentError
from overseer.runtime.process import AgentProcess, ProcessExit

logger = logging.getLogger(__name__)

JsonId = int | str
NotificationHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
"""``(method, params)``; params is ``{}`` when absent or not an object."""
RequestHandler = Callable[[JsonId, str, dict[str, Any]], Awaitable[None]]
"""``(id, method, params)``. The handler must eventually call ``respond``/``respond_error`` with ``id``."""
MalformedCallback = Callable[[str, str], Awaitable[None]]
"""``(line_prefix, reason)`` for every skipped line."""
ClosedCallback = Callable[[ProcessExit], Awaitable[None]]

_PREFIX_CHARS = 200
_LATE_IDS_KEPT = 1024  # ids of timed-out requests remembered to tell "late" from "unknown" responses

# JSON-RPC 2.0 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


_loads = jsoncodec.loads  # orjson, falling back to json for what orjson refuses (NaN, huge ints)
_orjson_loads = orjson.loads  # tried first inline: one Python frame less per agent line


class RpcError(AgentError):
    """The peer answered a request with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method} failed: {message} (code {code})")
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data


class RpcTimeout(AgentError):
    """No response arrived within the request's timeout. A later response is counted as late."""


class RpcConnectionClosed(AgentError):
    """The process exited (or the connection was closed) before the response arrived."""


@dataclass(slots=True)
class RpcStats:
    """Counters of what the peer sent that we did not act on (plus traffic totals)."""

    malformed: int = 0
    unknown_response: int = 0
    late_response: int = 0
    notifications: int = 0
    server_requests: int = 0
    responses: int = 0


class JsonRpcConnection:
    """A JSON-RPC client/server endpoint over one :class:`AgentProcess` (see the module docstring).

    Parameters:
        on_notification: awaited per notification, in wire order.
        on_request: awaited per server request, in wire order with notifications. Without one,
            every server request is answered ``-32601`` at once.
        on_malformed: awaited per malformed line (after it was logged and counted).
        on_closed: awaited once, after the process exited and every earlier message was dispatched.
        name: label for logs and error messages.
        default_timeout_s: request timeout when ``request`` gets none (seconds; None = no timeout).
        include_jsonrpc_field: add ``"jsonrpc": "2.0"`` to what we send (Codex accepts both).
    """

    def __init__(
        self,
        *,
        on_notification: NotificationHandler | None = None,
        on_request: RequestHandler | None = None,
        on_malformed: MalformedCallback | None = None,
        on_closed: ClosedCallback | None = None,
        name: str = "rpc",
        default_timeout_s: float | None = 60.0,
        include_jsonrpc_field: bool = True,
    ) -> None:
        self.name = name
        self.stats = RpcStats()
        self.default_timeout_s = default_timeout_s
        self._on_notification = on_notification
        self._on_request = on_request
        self._on_malformed = on_malformed
        self._on_closed = on_closed
        self._jsonrpc = include_jsonrpc_field
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._timed_out: OrderedDict[int, str] = OrderedDict()
        self._queue = Inbox[tuple[str, Any]]()
        self._process: AgentProcess | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed_error: RpcConnectionClosed | None = None

    # ------------------------------------------------------------------ wiring

    def attach(self, process: AgentProcess) -> None:
        """Bind to ``process``, which was created with ``on_line=self.feed_line`` and has been
        started (lines fed before this are queued, not lost). Starts the dispatcher task.

        Raises:
            AgentError: already attached, or the process was not started.
        """
        if self._process is not None:
            raise AgentError(f"{self.name}: connection already attached")
        exit_future = process.exit_future  # raises AgentError before start
        self._process = process
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name=f"{self.name}-dispatch")
        exit_future.add_done_callback(self._process_exited)

    @property
    def closed(self) -> bool:
        """True once the process exited (no request can succeed any more)."""
        return self._closed_error is not None

    @property
    def pending_count(self) -> int:
        """Requests sent and not yet answered, failed or timed out."""
        return len(self._pending)

    # ------------------------------------------------------------------ outgoing

    async def request(self, method: str, params: Any = None, *, timeout_s: float | None = -1.0) -> Any:
        """Send a request and return its ``result``.

        ``timeout_s``: seconds to wait; ``-1`` (default) uses ``default_timeout_s``; None waits forever.

        Raises:
            RpcError: the peer answered with an error object.
            RpcTimeout: no answer in time (the id is remembered; a later answer counts as late).
            RpcConnectionClosed: the process is gone or exited while we waited.
        """
        if self._closed_error is not None:
            raise RpcConnectionClosed(str(self._closed_error))
        timeout = self.default_timeout_s if timeout_s is not None and timeout_s < 0 else timeout_s
        req_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (method, future)
        message: dict[str, Any] = {"id": req_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self._send(message)
            return await asyncio.wait_for(asyncio.shield(future), timeout=timeout)
        except TimeoutError:
            self._remember_timed_out(req_id, method)
            raise RpcTimeout(f"{self.name}: {method} (id {req_id}) got no response within {timeout}s") from None
        except AgentError as exc:
            if isinstance(exc, RpcError | RpcConnectionClosed):
                raise
            raise RpcConnectionClosed(f"{self.name}: {method} could not be sent: {exc}") from exc
        finally:
            self._pending.pop(req_id, None)
            if not future.done():
                future.cancel()

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no id, no answer). Raises RpcConnectionClosed if the process is gone."""
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = params
        try:
            await self._send(message)
        except RpcConnectionClosed:
            raise
        except AgentError as exc:
            raise RpcConnectionClosed(f"{self.name}: {method} could not be sent: {exc}") from exc

    async def respond(self, request_id: JsonId, result: Any) -> None:
        """Answer the server request ``request_id`` (the id exactly as received) with ``result``."""
        await self._send_reply({"id": request_id, "result": result})

    async def respond_error(self, request_id: JsonId, code: int, message: str, data: Any = None) -> None:
        """Answer the server request ``request_id`` with a JSON-RPC error object."""
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        await self._send_reply({"id": request_id, "error": error})

    async def close(self) -> None:
        """Stop the dispatcher without waiting for the process (used after the process is gone)."""
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher

    async def wait_closed(self) -> None:
        """Wait until the process exited and ``on_closed`` has run. Called from inside a handler (on
        the dispatcher task) it returns at once instead of waiting for itself."""
        if self._dispatcher is None or asyncio.current_task() is self._dispatcher:
            return
        await asyncio.shield(self._dispatcher)

    async def _send_reply(self, message: dict[str, Any]) -> None:
        try:
            await self._send(message)
        except AgentError as exc:
            raise RpcConnectionClosed(f"{self.name}: reply to request {message['id']!r} not sent: {exc}") from exc

    async def _send(self, message: dict[str, Any]) -> None:
        if self._process is None:
            raise RpcConnectionClosed(f"{self.name}: connection is not attached to a process")
        if self._jsonrpc:
            message = {"jsonrpc": "2.0", **message}
        line = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        await self._process.write_line(line)

    def _remember_timed_out(self, req_id: int, method: str) -> None:
        self._timed_out[req_id] = method
        while len(self._timed_out) > _LATE_IDS_KEPT:
            self._timed_out.popitem(last=False)

    # ------------------------------------------------------------------ incoming

    async def feed_line(self, line: str) -> None:
        """The process's ``on_line``: parse and route one stdout line. Never raises."""
        try:
            message = _orjson_loads(line)
        except ValueError:  # blank, not JSON at all, or what orjson refuses (NaN, huge ints, lone surrogates)
            if not line or line.isspace():
                return
            try:
                message = _loads(line)
            except ValueError as exc:
                self._malformed(line, f"not JSON: {exc}")
                return
        if type(message) is not dict:  # JSON parsers build plain dicts only
            self._malformed(line, f"not a JSON object ({type(message).__name__})")
            return
        method = message.get("method")
        has_id = message.get("id") is not None
        if not has_id and type(method) is str:  # the bulk of a stream: a notification
            self.stats.notifications += 1
            params = message.get("params")
            self._queue.put_nowait(("notification", (method, params if type(params) is dict else {})))
            return
        if method is not None:  # a server request (a notification took the fast path above)
            if type(method) is not str:
                self._malformed(line, "method is not a string")
            elif not isinstance(message["id"], int | str) or isinstance(message["id"], bool):
                self._malformed(line, "server request id is not an integer or string")
            else:
                self.stats.server_requests += 1
                self._queue.put_nowait(("request", (message["id"], method, _params(message))))
            return
        if "id" in message and ("result" in message or "error" in message):
            self._route_response(message, line)
            return
        self._malformed(line, "neither a request, a notification nor a response")

    async def feed_oversized(self, line_prefix: str, reason: str) -> None:
        """The process's ``on_malformed``: a line too long to read was skipped."""
        self._malformed(line_prefix, reason)

    def _route_response(self, message: dict[str, Any], line: str) -> None:
        raw_id = message["id"]
        key: int | None = None
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            key = raw_id
        elif isinstance(raw_id, str) and raw_id.isdigit():  # tolerate peers that echo ids as strings
            key = int(raw_id)
        entry = self._pending.get(key) if key is not None else None
        if entry is None or entry[1].done():
            if key is not None and key in self._timed_out:
                self.stats.late_response += 1
                logger.warning("%s: late response to %s (id %s) after its timeout; ignored",
                               self.name, self._timed_out[key], raw_id)
            else:
                self.stats.unknown_response += 1
                logger.warning("%s: response to an id we never sent (%r); ignored: %.200s", self.name, raw_id, line)
            return
        self.stats.responses += 1
        method, future = entry
        if "error" in message and message["error"] is not None:
            err = message["error"]
            if isinstance(err, dict):
                raw_code = err.get("code")
                code = raw_code if isinstance(raw_code, int) else INTERNAL_ERROR
                future.set_exception(RpcError(method, code, str(err.get("message", "")), err.get("data")))
            else:
                future.set_exception(RpcError(method, INTERNAL_ERROR, str(err)))
        else:
            future.set_result(message.get("result"))

    def _malformed(self, line: str, reason: str) -> None:
        self.stats.malformed += 1
        prefix = line[:_PREFIX_CHARS]
        logger.warning("%s: malformed line skipped (%s): %.200r", self.name, reason, prefix)
        self._queue.put_nowait(("malformed", (prefix, reason)))

    # ------------------------------------------------------------------ dispatch

    async def _dispatch_loop(self) -> None:
        queue = self._queue
        get_nowait = queue.get_nowait
        while True:
            try:  # drain what is queued without a coroutine per message; wait only when empty
                kind, args = get_nowait()
            except IndexError:
                kind, args = await queue.get()
            if kind == "notification" and self._on_notification is not None:
                try:  # the bulk of a stream: inline, one coroutine layer less than _dispatch
                    await self._on_notification(*args)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("%s: notification handler failed for %.100r", self.name, args)
                continue
            if kind == "closed":
                break
            await self._dispatch(kind, args)
        if self._on_closed is not None:
            try:
                await self._on_closed(args)
            except Exception:
                logger.exception("%s: on_closed handler failed", self.name)

    def _process_exited(self, future: asyncio.Future[ProcessExit]) -> None:
        assert self._process is not None
        exit_ = future.result()
        self._fail_pending(exit_, self._process)
        # The exit resolves only after stdout EOF, so every message read is already queued ahead.
        self._queue.put_nowait(("closed", exit_))

    def _fail_pending(self, exit_: ProcessExit, process: AgentProcess) -> None:
        tail = process.stderr_tail(15)
        text = f"{self.name} process (pid {process.pid}) exited ({exit_.describe()})"
        if tail:
            text += f"; stderr tail:\n{tail}"
        self._closed_error = RpcConnectionClosed(text)
        for method, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(RpcConnectionClosed(f"{method} failed: {text}"))

    async def _dispatch(self, kind: str, args: Any) -> None:
        try:
            if kind == "notification":
                if self._on_notification is not None:
                    await self._on_notification(*args)
            elif kind == "request":
                if self._on_request is not None:
                    await self._on_request(*args)
                else:
                    await self.respond_error(args[0], METHOD_NOT_FOUND, f"{args[1]} is not supported")
            elif kind == "malformed" and self._on_malformed is not None:
                await self._on_malformed(*args)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s: %s handler failed for %.100r", self.name, kind, args)


def _params(message: dict[str, Any]) -> dict[str, Any]:
    params = message.get("params")
    return params if isinstance(params, dict) else {}

"""One agent child process with line-oriented stdio, shared by every agent adapter.

:class:`AgentProcess` owns exactly one child (``codex app-server``, ``claude -p ...`` or a test
peer) and nothing else. It is protocol-agnostic: it hands every stdout line to a callback and knows
nothing about JSON-RPC or stream-json (see ``runtime.rpc`` and the adapters for that).

Invariants (also in ``runtime/AGENTS.md``):

* The child is spawned from an argv list with ``asyncio.create_subprocess_exec``; never through a
  shell. Prompts and other user data are never interpolated into a command line.
* The child leads its own process group (``start_new_session=True``), so :meth:`terminate` signals
  the child *and* everything it spawned (shell commands the agent runs) with one ``killpg``.
* stdout is read line by line with a limit of ``line_limit_bytes`` per line (Codex lines can be
  megabytes). A longer line is skipped up to its newline and reported through ``on_malformed``; it is
  never fatal. Lines are delivered in order, one at a time: ``on_line`` is awaited before the next
  line is read, which gives natural back-pressure.
* stderr is drained in its own task (so the pipe can never fill and block the child) into a bounded
  ring buffer (:meth:`stderr_tail`, used in error messages) and the ``overseer.runtime.process``
  logger at DEBUG.
* :attr:`exit_future` resolves once the child has exited *and* stdout has been fully delivered
  (EOF), so every line the child wrote is seen before the exit. If a grandchild keeps stdout open
  after the child died, reading stops ``eof_grace_s`` after the exit instead of hanging.
* :meth:`terminate` is idempotent: close stdin, SIGTERM the group, SIGKILL the group after the grace.

Typical use::

    proc = AgentProcess(["codex", "app-server"], env=env, cwd=workdir, on_line=handle_line,
                        binary_setting="OVERSEER_CODEX_BIN")
    await proc.start()                 # AgentBinaryError when the binary is missing
    await proc.write_line('{"id":1,"method":"initialize","params":{}}')
    exit = await proc.terminate(grace_s=5.0)   # ProcessExit(returncode=..., signal=...)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
import signal
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from overseer.runtime.agent import AgentBinaryError, AgentError

logger = logging.getLogger(__name__)

LineHandler = Callable[[str], Awaitable[None] | None]
"""Called with each stdout line, decoded as UTF-8 (invalid bytes replaced), without the newline."""

MalformedHandler = Callable[[str, str], Awaitable[None] | None]
"""Called as ``(line_prefix, reason)`` for a stdout line the process layer had to skip (too long)."""

_PREFIX_CHARS = 200  # how much of a skipped line is kept for the report
_STDERR_LINE_CHARS = 4000  # stderr lines longer than this are truncated in the ring buffer


@dataclass(frozen=True, slots=True)
class ProcessExit:
    """How the child ended. ``returncode`` is the exit status (None if unknown); ``signal`` is the
    number of the signal that killed it (e.g. 9 for SIGKILL), else None."""

    returncode: int | None
    signal: int | None

    def describe(self) -> str:
        """A short human text: ``"exit code 1"`` / ``"killed by SIGKILL"``."""
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        return f"exit code {self.returncode}"


class AgentProcess:
    """A child process speaking a line protocol on stdin/stdout (see the module docstring).

    Parameters:
        argv: program and arguments; ``argv[0]`` is looked up on ``PATH`` if it has no slash.
        env: the *complete* environment of the child (not merged with ``os.environ``).
        cwd: working directory of the child.
        on_line: awaited (or called) with each stdout line; exceptions are logged, not raised.
        on_malformed: called with ``(line_prefix, reason)`` for each skipped oversized line.
        line_limit_bytes: the longest stdout line accepted, in bytes (newline excluded).
        binary_setting: the setting that names the binary, for :class:`AgentBinaryError`.
        name: a short label for logs (``"codex"``, ``"claude"``).
        stderr_lines: how many of the last stderr lines to keep.
        eof_grace_s: after the child exits, how long to keep reading stdout for its EOF.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        on_line: LineHandler,
        on_malformed: MalformedHandler | None = None,
        line_limit_bytes: int = 64 * 1024 * 1024,
        binary_setting: str = "agent binary",
        name: str = "agent",
        stderr_lines: int = 200,
        eof_grace_s: float = 0.1,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv: tuple[str, ...] = tuple(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.name = name
        self._on_line = on_line
        self._on_malformed = on_malformed
        self._limit = max(1024, int(line_limit_bytes))
        self._binary_setting = binary_setting
        self._eof_grace_s = eof_grace_s
        self._stderr: deque[str] = deque(maxlen=max(1, stderr_lines))
        self._proc: asyncio.subprocess.Process | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._write_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._exit: asyncio.Future[ProcessExit] | None = None
        self._terminating = False
        self.malformed_lines = 0

    # ------------------------------------------------------------------ state

    @property
    def pid(self) -> int | None:
        """The child's pid (also its process-group id), or None before :meth:`start`."""
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        """True from a successful :meth:`start` until the exit is observed."""
        return self._proc is not None and self._exit is not None and not self._exit.done()

    @property
    def exit_future(self) -> asyncio.Future[ProcessExit]:
        """Resolves with :class:`ProcessExit` after exit + stdout EOF. Never raises (not cancelled
        by us). Only valid after :meth:`start`."""
        if self._exit is None:
            raise AgentError(f"{self.name} process was not started")
        return self._exit

    @property
    def exit_info(self) -> ProcessExit | None:
        """The exit once known, else None."""
        return self._exit.result() if self._exit is not None and self._exit.done() else None

    def stderr_tail(self, lines: int = 20) -> str:
        """The last ``lines`` stderr lines joined by newlines ("" if none)."""
        if lines <= 0:
            return ""
        return "\n".join(list(self._stderr)[-lines:])

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Spawn the child and start the reader tasks.

        Raises:
            AgentBinaryError: the binary does not exist, is not executable, or is not a program.
            AgentError: the working directory is missing, or spawning failed otherwise; or start was
                already called.
        """
        if self._proc is not None:
            raise AgentError(f"{self.name} process already started")
        loop = asyncio.get_running_loop()
        try:
            # loop.subprocess_exec with our protocol (what create_subprocess_exec does inside) so the
            # exit is seen when the child dies, not when every pipe is closed: on Python 3.11
            # Process.wait() hangs while a grandchild still holds stdout.
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(limit=self._limit, loop=loop),
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            if exc.filename is not None and os.fspath(exc.filename) == os.fspath(self.cwd):
                raise AgentError(f"{self.name}: cannot use working directory {self.cwd}: {exc.strerror}") from exc
            raise AgentBinaryError(
                f"cannot run {self.name} binary {self.argv[0]!r}: {exc.strerror or exc}; "
                f"set {self._binary_setting} to the path of a working binary",
                setting=self._binary_setting,
            ) from exc
        except OSError as exc:  # e.g. ENOEXEC: not a valid executable
            raise AgentBinaryError(
                f"cannot run {self.name} binary {self.argv[0]!r}: {exc}; "
                f"set {self._binary_setting} to the path of a working binary",
                setting=self._binary_setting,
            ) from exc
        self._transport = transport
        self._proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._exit = loop.create_future()
        logger.debug("%s started pid=%s argv0=%s cwd=%s", self.name, self._proc.pid, self.argv[0], self.cwd)
        stdout_task = asyncio.create_task(self._read_stdout(), name=f"{self.name}-stdout")
        stderr_task = asyncio.create_task(self._read_stderr(), name=f"{self.name}-stderr")
        watcher = asyncio.create_task(
            self._watch(protocol.exited, stdout_task, stderr_task), name=f"{self.name}-exit"
        )
        self._tasks = [stdout_task, stderr_task, watcher]

    async def wait_exit(self) -> ProcessExit:
        """Wait until the child has exited and stdout is drained; returns the exit."""
        return await asyncio.shield(self.exit_future)

    async def write_line(self, line: str) -> None:
        """Write ``line`` plus a newline to the child's stdin and drain. Writes never interleave.

        Raises:
            AgentError: the process is not running or its stdin is closed (the error message
                includes the exit and the stderr tail when known).
        """
        if "\n" in line:
            raise ValueError("a protocol line must not contain a newline")
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise AgentError(f"{self.name} process was not started")
        async with self._write_lock:
            if self._terminating or proc.stdin.is_closing() or not self.alive:
                raise AgentError(self._gone_message("cannot write"))
            try:
                proc.stdin.write(line.encode("utf-8") + b"\n")
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
                raise AgentError(self._gone_message(f"cannot write ({exc.__class__.__name__})")) from exc

    async def close_stdin(self) -> None:
        """Close the child's stdin (EOF tells most agents to finish). Idempotent."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        async with self._write_lock:
            if not proc.stdin.is_closing():
                proc.stdin.close()
        with contextlib.suppress(Exception):
            await proc.stdin.wait_closed()

    async def terminate(self, grace_s: float = 5.0) -> ProcessExit | None:
        """Stop the child and its process group. Idempotent; safe to call concurrently.

        Steps: close stdin; SIGTERM the group; after ``grace_s`` seconds SIGKILL the group. Once the
        child is gone the group gets a final SIGKILL (best effort) so no grandchild survives.
        Returns the exit, or None if the process was never started.
        """
        if self._proc is None or self._exit is None:
            return None
        self._terminating = True
        if not self._exit.done():
            await self.close_stdin()
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._exit), timeout=max(0.0, grace_s))
            except TimeoutError:
                logger.warning("%s pid=%s ignored SIGTERM for %.1fs; sending SIGKILL", self.name, self.pid, grace_s)
                self.signal_group(signal.SIGKILL)
        result = await asyncio.shield(self._exit)
        self.signal_group(signal.SIGKILL)  # stragglers in the group, if any
        return result

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the child's process group; False if there is no such group any more."""
        if self._proc is None:
            return False
        try:
            os.killpg(self._proc.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    # ------------------------------------------------------------------ internals

    def _gone_message(self, what: str) -> str:
        exit_ = self.exit_info
        state = exit_.describe() if exit_ else ("stopping" if self._terminating else "not running")
        tail = self.stderr_tail(10)
        msg = f"{self.name} process (pid {self.pid}) {what}: {state}"
        return f"{msg}; stderr tail:\n{tail}" if tail else msg

    async def _call(self, handler: Callable[..., Awaitable[None] | None], *args: str) -> None:
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s: line handler failed", self.name)

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        reader = self._proc.stdout
        async for text, skip_reason in _iter_lines(reader):
            if skip_reason is None:
                await self._call(self._on_line, text)
                continue
            self.malformed_lines += 1
            logger.warning("%s pid=%s: skipped stdout line (%s): %.80r", self.name, self.pid, skip_reason, text)
            if self._on_malformed is not None:
                await self._call(self._on_malformed, text, skip_reason)

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for line, skip_reason in _iter_lines(self._proc.stderr):
            text = line if skip_reason is None else f"{line}... [{skip_reason}]"
            if len(text) > _STDERR_LINE_CHARS:
                text = text[:_STDERR_LINE_CHARS] + "..."
            self._stderr.append(text)
            logger.debug("%s pid=%s stderr: %s", self.name, self.pid, text)

    async def _watch(
        self, exited: asyncio.Future[int], stdout_task: asyncio.Task[None], stderr_task: asyncio.Task[None]
    ) -> None:
        assert self._proc is not None and self._exit is not None
        returncode = await exited
        # Deliver what the child wrote before it died, but don't hang on a grandchild that inherited
        # the pipe: one short shared grace for both readers after the exit, then stop them (under
        # uvloop the EOF of a killed child can arrive late or never).
        _, pending = await asyncio.wait({stdout_task, stderr_task}, timeout=self._eof_grace_s)
        for task in pending:
            logger.info("%s pid=%s exited but a pipe stayed open; stopped reading it", self.name, self.pid)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._transport is not None:
            self._transport.close()  # release pipes a straggler still holds (no-op after a clean EOF)
        exit_ = ProcessExit(returncode=returncode if returncode >= 0 else None,
                            signal=-returncode if returncode < 0 else None)
        logger.debug("%s pid=%s exited: %s", self.name, self._proc.pid, exit_.describe())
        if not self._exit.done():
            self._exit.set_result(exit_)


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The stock stream protocol plus ``exited``: a future resolved with the return code as soon as
    the child is reaped, independent of its pipes."""

    def __init__(self, *, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[int] = loop.create_future()

    def process_exited(self) -> None:
        transport = getattr(self, "_transport", None)  # the base class drops it in process_exited
        returncode = transport.get_returncode() if transport is not None else None
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(returncode if returncode is not None else -1)


async def _iter_lines(reader: asyncio.StreamReader) -> AsyncIterator[tuple[str, str | None]]:
    """Yield ``(text, None)`` per line, or ``(prefix, reason)`` for a line over the reader's limit,
    which is consumed up to and including its newline (``prefix``: its first 200 characters).
    Ends at EOF; a final line without a newline is still yielded."""
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                yield _decode(exc.partial), None
            return
        except asyncio.LimitOverrunError as exc:
            # The data stays buffered on overrun: take it, then discard through the newline.
            head = await reader.readexactly(exc.consumed)
            skipped = len(head) + await _skip_to_newline(reader)
            yield _decode(head[:_PREFIX_CHARS]), f"line longer than the limit ({skipped} bytes skipped)"
            continue
        yield _decode(raw), None


async def _skip_to_newline(reader: asyncio.StreamReader) -> int:
    """Discard bytes up to and including the next newline (or EOF); returns how many."""
    skipped = 0
    while True:
        try:
            chunk = await reader.readuntil(b"\n")
            return skipped + len(chunk)
        except asyncio.LimitOverrunError as exc:
            skipped += len(await reader.readexactly(exc.consumed))
        except asyncio.IncompleteReadError as exc:
            return skipped + len(exc.partial)


_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def _decode(raw: bytes) -> str:
    """One protocol line as text. A JSON-escaped NUL (``\u0000``, e.g. binary command output) becomes
    U+FFFD here, at the boundary: PostgreSQL can store neither in text nor in JSONB columns."""
    if b"\\u0000" in raw:
        raw = _NUL_ESCAPE.sub(rb"\1\\ufffd", raw)
    return raw.rstrip(b"\r\n").decode("utf-8", errors="replace")

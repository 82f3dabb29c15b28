"""SSE fan-out: N clients on ``GET /api/v1/ops/stream`` while the server appends events at a fixed rate.

Setup: a fresh temp SQLite database (or PostgreSQL with ``--pg``). A real uvicorn server runs in a
SUBPROCESS (``_launch_server.py``: ``create_app(start_runtime=False)``, one workspace, one worker row),
so its CPU and RSS can be read from ``/proc/<pid>/stat`` and ``/proc/<pid>/status`` (psutil is not
installed). The events are written INSIDE the server process by the launcher's writer, through
``events.log.defer`` + ``db.session()`` (one transaction per batch of whatever is due, like agent
ingest), so they are published on the server's bus after commit. Rows written into the database by
another process would never be published, and no HTTP endpoint appends events in bulk: the
``--probe-http-s`` probe measures what the API write path reaches (``PUT /workspaces/{id}/settings``,
one ``workspace.settings_changed`` event per request, 8 requests in flight) before any client connects.

Clients: ``--client-procs`` processes (this script in ``--client-worker`` mode), each one asyncio
loop with its share of the ``--clients`` httpx streams (admin bearer token). Each parses every SSE
frame, checks ids (gaps / duplicates against the contiguous ids the writer produces), and for ids
divisible by ``--sample`` records the delivery lag: receive time (``time.time()`` when the chunk
arrived) minus the event's ``created_at`` (set just before its transaction commits; same machine
clock). A ``reconnect`` frame is counted by reason; the client then resumes with ``Last-Event-ID``
as a browser does (``--no-resume`` stops it instead).

Measured while ``--rate`` events/s are appended for ``--seconds`` s: delivered events/s per client
(events received / time from the writer's start to the client's last event) and in total, lag
p50/p99, server CPU % (1 s samples of utime+stime), server RSS (start / peak / end, and the slope
of RSS over the write phase), client processes' CPU, the writer's achieved rate and commit times,
and how many clients got ``reconnect`` (slow_consumer) or missed events.

    .venv/bin/python benchmarks/stream_fanout.py [--clients 10,200] [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 1e6


# ------------------------------------------------------------------------------------------ /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_MB


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (nan with < 3 points)."""
    if len(xs) < 3:
        return float("nan")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")


def runq_wait_s(pid: int) -> float:
    """Seconds the process's main thread (the event loop) has waited on a run queue: runnable, not running."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


class Sampler:
    """1 s samples, per pid: CPU % (all threads), run-queue wait % of the main thread, RSS; tagged with a phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.phase = "connect"
        self.rows: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        prev = {k: (cpu_seconds(p), runq_wait_s(p)) for k, p in self.pids.items()}
        t_prev = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            dt = now - t_prev
            row: dict[str, Any] = {"t": now, "dt": dt, "phase": self.phase}
            for k, p in self.pids.items():
                try:
                    c, w = cpu_seconds(p), runq_wait_s(p)
                    row[k] = (c - prev[k][0]) / dt * 100
                    row[f"{k}_cpu_s"] = c - prev[k][0]
                    row[f"{k}_wait"] = (w - prev[k][1]) / dt * 100
                    prev[k] = (c, w)
                    row[f"{k}_rss"] = rss_mb(p)
                except (FileNotFoundError, ProcessLookupError):
                    pass
            t_prev = now
            self.rows.append(row)


# ------------------------------------------------------------------------------------------ client worker

CREATED = b'"created_at":"'


class ClientStats:
    __slots__ = ("cursor", "dups", "events", "first_recv", "gaps", "lags", "last", "last_recv", "ready",
                 "reconnects", "stopped")

    def __init__(self) -> None:
        self.ready = False
        self.cursor: int | None = None
        self.last: int | None = None
        self.events = 0
        self.gaps = 0
        self.dups = 0
        self.first_recv = 0.0
        self.last_recv = 0.0
        self.lags: list[float] = []
        self.reconnects: dict[str, int] = {}
        self.stopped = False


async def one_client(client: Any, url: str, st: ClientStats, sample: int, resume: bool, ready: asyncio.Event,
                     n_ready: list[int], n_total: int) -> None:
    fromiso = datetime.fromisoformat
    while not st.stopped:
        headers = {"Last-Event-ID": str(st.last)} if st.last is not None else {}
        try:
            async with client.stream("GET", url, headers=headers) as resp:
                if resp.status_code != 200:
                    raise RuntimeError(f"stream answered {resp.status_code}: {(await resp.aread())[:200]!r}")
                buf = b""
                async for chunk in resp.aiter_raw():
                    now = time.time()
                    buf += chunk
                    frames = buf.split(b"\r\n\r\n")
                    buf = frames.pop()
                    for fr in frames:
                        if not fr.startswith(b"id: "):
                            if fr.startswith(b"event: reconnect"):
                                data = json.loads(fr.split(b"data: ", 1)[1])
                                st.reconnects[data["reason"]] = st.reconnects.get(data["reason"], 0) + 1
                                if not resume:
                                    st.stopped = True
                            continue  # pings (": ping") end here too
                        nl = fr.index(b"\r\n")
                        eid = int(fr[4:nl])
                        if fr.startswith(b"event: ready", nl + 2):
                            if st.cursor is None:
                                st.cursor = st.last = eid
                            if not st.ready:
                                st.ready = True
                                n_ready[0] += 1
                                if n_ready[0] == n_total:
                                    ready.set()
                            continue
                        last = st.last if st.last is not None else eid - 1
                        if eid <= last:
                            st.dups += 1
                            continue
                        st.gaps += eid - last - 1
                        st.last = eid
                        st.events += 1
                        if not st.first_recv:
                            st.first_recv = now
                        st.last_recv = now
                        if eid % sample == 0:
                            i = fr.find(CREATED)
                            if i >= 0:
                                j = fr.index(b'"', i + len(CREATED))
                                st.lags.append(now - fromiso(fr[i + len(CREATED):j].decode()).timestamp())
                    if st.stopped:
                        return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            st.reconnects[f"error:{type(exc).__name__}"] = st.reconnects.get(f"error:{type(exc).__name__}", 0) + 1
            if st.stopped:
                return
            await asyncio.sleep(0.2)


async def client_worker(args: argparse.Namespace) -> None:
    """``--client-worker``: run ``--clients`` streams; stdout ``{"ready": n}``, then on stdin
    ``{"until": last_id, "timeout_s": t}`` wait for every stream to reach it, print results, exit."""
    import httpx

    from overseer.auth.tokens import create_token

    token = create_token(args.jwt_key, subject="bench", scopes=["admin"], workspace_ids=["*"])
    url = f"{args.url}/api/v1/ops/stream"
    stats = [ClientStats() for _ in range(args.clients)]
    ready = asyncio.Event()
    n_ready = [0]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=httpx.Timeout(30.0, read=None)) as client:
        tasks = [asyncio.create_task(one_client(client, url, st, args.sample, args.resume, ready, n_ready,
                                                args.clients)) for st in stats]
        await asyncio.wait_for(ready.wait(), 90)
        print(json.dumps({"ready": args.clients}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        cmd = json.loads(await reader.readline())
        deadline = time.monotonic() + float(cmd["timeout_s"])
        until = int(cmd["until"])
        while time.monotonic() < deadline:
            if all(st.stopped or (st.last or 0) >= until for st in stats):
                break
            await asyncio.sleep(0.05)
        for st in stats:
            st.stopped = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out = [{"cursor": st.cursor, "last": st.last, "events": st.events, "gaps": st.gaps, "dups": st.dups,
            "first_recv": st.first_recv, "last_recv": st.last_recv, "reconnects": st.reconnects,
            "lags_ms": [round(x * 1000, 2) for x in st.lags]} for st in stats]
    print(json.dumps({"results": out}), flush=True)


# ------------------------------------------------------------------------------------------ orchestrator


async def read_json(proc: asyncio.subprocess.Process, key: str, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"process {proc.pid} ended before sending {key!r}")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            print(f"  [{proc.pid}] {line.decode().rstrip()}", file=sys.stderr)
            continue
        if key in obj:
            return obj  # type: ignore[no-any-return]


async def send(proc: asyncio.subprocess.Process, obj: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(obj) + "\n").encode())
    await proc.stdin.drain()


async def probe_http(url: str, jwt_key: str, workspace_id: str, seconds: float) -> tuple[int, float]:
    """Events/s the API write path reaches: PUT settings (1 event per request), 8 in flight."""
    import httpx

    from overseer.auth.tokens import create_token

    token = create_token(jwt_key, subject="bench", scopes=["admin"], workspace_ids=["*"])
    done = 0
    end = time.perf_counter() + seconds

    async def loop(client: httpx.AsyncClient) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < end:
            i += 1
            r = await client.put(f"/api/v1/workspaces/{workspace_id}/settings",
                                 json={"approval_timeout_s": 60 + i % 100})
            if r.status_code == 200:
                done += 1
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        await asyncio.gather(*(loop(client) for _ in range(8)))
    return done, done / (time.perf_counter() - t0)


async def run_once(args: argparse.Namespace, n_clients: int, backend: str, probe: bool) -> None:
    print(f"\n## {n_clients} clients, {args.rate:g} events/s for {args.seconds:g} s ({backend})")
    print(f"# load before: {C.uptime()}")
    with tempfile.TemporaryDirectory(prefix="overseer-fanout-") as tmp:
        async with C.bench_database(backend) as db_url:
            server = await asyncio.create_subprocess_exec(
                sys.executable, str(HERE / "_launch_server.py"), "--database-url", db_url, "--jwt-key", C.JWT_KEY,
                "--data-dir", tmp, "--loop", args.loop, "--stream-queue-max", str(args.queue_max),
                *(["--trace"] if args.trace else []),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            workers: list[asyncio.subprocess.Process] = []
            sampler: Sampler | None = None
            try:
                hello = await read_json(server, "ready", 60)
                url = f"http://127.0.0.1:{hello['port']}"
                pid = server.pid
                rss0 = rss_mb(pid)
                if probe and args.probe_http_s > 0:
                    n, rate = await probe_http(url, C.JWT_KEY, hello["workspace_id"], args.probe_http_s)
                    print(f"HTTP write path (PUT /workspaces/{{id}}/settings, 8 in flight, {args.probe_http_s:g} s, "
                          f"no stream clients): {n} events, {rate:.0f} events/s")
                procs = min(args.client_procs, n_clients)
                shares = [n_clients // procs + (1 if i < n_clients % procs else 0) for i in range(procs)] if procs else []
                sample = args.sample or max(1, n_clients // 20)
                t_conn = time.perf_counter()
                for share in shares:
                    workers.append(await asyncio.create_subprocess_exec(
                        sys.executable, __file__, "--client-worker", "--url", url, "--clients", str(share),
                        "--sample", str(sample), "--jwt-key", C.JWT_KEY, "--loop", args.loop,
                        *([] if args.resume else ["--no-resume"]),
                        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**30))
                pids = {"server": pid} | {f"client{i}": w.pid for i, w in enumerate(workers)}
                sampler = Sampler(pids)
                sampler.start()
                for w in workers:
                    await read_json(w, "ready", 90)
                connect_s = time.perf_counter() - t_conn
                await send(server, {"cmd": "stats"})
                stats = await read_json(server, "stats", 10)
                rss_connected = rss_mb(pid)
                print(f"connected {stats['connected']} streams in {connect_s:.1f} s "
                      f"({procs} client processes, lag sampled on ids % {sample} == 0)")
                await asyncio.sleep(1.5)  # one idle CPU sample with everyone connected
                sampler.phase = "write"
                spy = None
                if args.profile:
                    spy = await asyncio.create_subprocess_exec(
                        str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-r", "100", "-f", "raw", "-o",
                        f"{args.profile}.{n_clients}.txt", "--pid", str(pid), "-d", str(int(args.seconds)),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                t_write = time.time()
                await send(server, {"cmd": "write", "rate": args.rate, "count": int(args.rate * args.seconds),
                                    "batch_max": args.batch_max, "max_seconds": args.seconds * 1.25})
                done = await read_json(server, "done", args.seconds * 5 + 60)
                sampler.phase = "drain"
                for w in workers:
                    await send(w, {"until": done["last_id"], "timeout_s": args.drain_s})
                results = []
                for w in workers:
                    results.extend((await read_json(w, "results", args.drain_s + 60))["results"])
                sampler.phase = "idle"
                if spy is not None:
                    await spy.wait()
                    print(f"py-spy profile of the server while writing: {args.profile}.{n_clients}.txt")
                await asyncio.sleep(2.2)  # RSS after the clients left
            finally:
                if sampler:
                    await sampler.stop()
                for w in workers:
                    if w.returncode is None:
                        try:
                            await asyncio.wait_for(w.wait(), 10)
                        except TimeoutError:
                            w.kill()
                            await w.wait()
                if server.returncode is None:
                    try:
                        await send(server, {"cmd": "quit"})
                        await asyncio.wait_for(server.wait(), 40)
                    except (TimeoutError, ConnectionError):
                        server.kill()
                        await server.wait()

    report(args, n_clients, done, results, sampler.rows if sampler else [], t_write, rss0, rss_connected)
    print(f"# load after: {C.uptime()}")


def report(args: argparse.Namespace, n_clients: int, done: dict[str, Any], results: list[dict[str, Any]],
           rows: list[dict[str, Any]], t_write: float, rss0: float, rss_connected: float) -> None:
    count = done["written"]
    if count < int(args.rate * args.seconds):
        print(f"WRITER FELL BEHIND: {count} of {int(args.rate * args.seconds)} events appended, stopped after "
              f"{done['seconds']:.1f} s (1.25 x --seconds)")
    print(f"writer: {count} events in {done['seconds']:.2f} s = {count / done['seconds']:.0f} events/s, "
          f"{done['transactions']} transactions (max batch {done['max_batch']}), commit p50/p99 "
          f"{done['commit_ms_p50']:.1f} / {done['commit_ms_p99']:.1f} ms; server event-loop lag (50 ms timer "
          f"overshoot) p50/p99/max {done['loop_lag_ms_p50']:.0f} / {done['loop_lag_ms_p99']:.0f} / "
          f"{done['loop_lag_ms_max']:.0f} ms")
    if not results:
        busy = [r for r in rows if r["phase"] == "write"]
        print(f"no clients (writer baseline): server CPU median {C.median([r['server'] for r in busy]):.0f} %, "
              f"{sum(r.get('server_cpu_s', 0.0) for r in busy) / count * 1e6:.0f} us CPU per appended event; "
              f"RSS {rss0:.1f} -> {max((r['server_rss'] for r in rows), default=0):.1f} MB peak")
        return
    per_rate = []
    for r in results:
        if r["events"] and r["last_recv"] > t_write:
            per_rate.append(r["events"] / (r["last_recv"] - t_write))
    complete = sum(1 for r in results if (r["last"] or 0) >= done["last_id"])
    got = [r["events"] for r in results]
    total_events = sum(got)
    span = max((r["last_recv"] for r in results), default=t_write) - t_write
    lags = sorted(x for r in results for x in r["lags_ms"])
    slow = sum(1 for r in results if r["reconnects"].get("slow_consumer"))
    slow_n = sum(r["reconnects"].get("slow_consumer", 0) for r in results)
    other: dict[str, int] = {}
    for r in results:
        for k, v in r["reconnects"].items():
            if k != "slow_consumer":
                other[k] = other.get(k, 0) + v
    print(f"delivered: {total_events} events to {n_clients} clients; {complete}/{n_clients} clients got every event "
          f"(up to id {done['last_id']}); per client events received min/median/max "
          f"{min(got)}/{C.median(got):.0f}/{max(got)} of {count}")
    print(f"delivered events/s per client (events / (last receive - writer start)): median "
          f"{C.median(per_rate):.0f}, min {min(per_rate, default=float('nan')):.0f}; total "
          f"{total_events / span if span > 0 else float('nan'):.0f} events/s over {span:.1f} s "
          f"(writer ran {done['seconds']:.1f} s)")
    print(f"delivery lag (created_at -> client receive), {len(lags)} samples: p50 {C.percentile(lags, 50):.1f} ms, "
          f"p99 {C.percentile(lags, 99):.1f} ms, max {lags[-1] if lags else float('nan'):.1f} ms")
    print(f"reconnect (slow_consumer): {slow}/{n_clients} clients ({slow_n} times); other: {other or 'none'}; "
          f"gaps {sum(r['gaps'] for r in results)}, duplicates {sum(r['dups'] for r in results)}")
    write = [r for r in rows if r["phase"] == "write"]
    srv_cpu = [r["server"] for r in write if "server" in r]
    cl_keys = sorted(k for k in (rows[0] if rows else {}) if k.startswith("client") and "_" not in k)
    cl_cpu = [sum(r.get(k, 0.0) for k in cl_keys) for r in write]
    idle_cpu = [r["server"] for r in rows if r["phase"] == "connect" and "server" in r]
    srv_wait = [r["server_wait"] for r in write if "server_wait" in r]
    cl_wait = [sum(r.get(f"{k}_wait", 0.0) for k in cl_keys) / max(1, len(cl_keys)) for r in write]
    busy = [r for r in rows if r["phase"] in ("write", "drain")]
    cpu_s = sum(r.get("server_cpu_s", 0.0) for r in busy)
    print(f"server CPU % (1 s samples while writing, {len(srv_cpu)}): median {C.median(srv_cpu):.0f}, "
          f"p90 {C.percentile(srv_cpu, 90):.0f}; connected+idle {C.median(idle_cpu[-1:]):.0f}; "
          f"event-loop thread waiting for a CPU (run queue): median {C.median(srv_wait):.0f} % of wall time")
    print(f"client processes: CPU median {C.median(cl_cpu):.0f} % together, run-queue wait median "
          f"{C.median(cl_wait):.0f} % each")
    print(f"server CPU per delivered frame: {cpu_s:.1f} CPU-s (write + drain) / {total_events} frames = "
          f"{cpu_s / total_events * 1e6 if total_events else float('nan'):.0f} us "
          f"(incl. the writer's {count} appends)")
    rss = [r["server_rss"] for r in rows if "server_rss" in r]
    wt = [r["t"] for r in write if "server_rss" in r]
    wr = [r["server_rss"] for r in write if "server_rss" in r]
    half = len(wr) // 2
    end_rss = rss[-1] if rss else float("nan")
    quarters = " / ".join(f"{wr[min(len(wr) - 1, q * len(wr) // 4)]:.0f}" for q in range(5)) if wr else "n/a"
    print(f"server RSS MB: start {rss0:.1f}, clients connected {rss_connected:.1f}, peak {max(rss, default=0):.1f}, "
          f"end (clients gone) {end_rss:.1f}; while writing at 0/25/50/75/100 %: {quarters}, slope "
          f"{slope(wt, wr) * 60:+.1f} MB/min (second half alone {slope(wt[half:], wr[half:]) * 60:+.1f} MB/min)")


async def orchestrate(args: argparse.Namespace) -> None:
    clients = [int(x) for x in args.clients.split(",")]
    C.header("SSE fan-out: GET /api/v1/ops/stream", {
        "clients": clients, "rate": f"{args.rate:g} events/s", "seconds": args.seconds,
        "client processes": args.client_procs, "stream_queue_max": args.queue_max,
        "writer batch_max": args.batch_max, "resume on reconnect": args.resume,
        "server": "uvicorn subprocess (_launch_server.py), create_app(start_runtime=False), writer in-process",
        "loop": args.loop, "backend": "pg" if args.pg else "sqlite",
        "events": "agent-style cycle turn.started/item.started/item.completed.../turn.completed (~330 B JSON)"})
    for i, n in enumerate(clients):
        await run_once(args, n, "pg" if args.pg else "sqlite", probe=i == 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="10,200", help="comma-separated client counts, one run each (10,200)")
    ap.add_argument("--rate", type=float, default=1000.0, help="events appended per second (1000)")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of writing (20)")
    ap.add_argument("--client-procs", type=int, default=2, help="client processes (2)")
    ap.add_argument("--sample", type=int, default=0, help="record lag for ids %% N == 0 (default clients/20)")
    ap.add_argument("--batch-max", type=int, default=500,
                    help="events per writer transaction at most (500, the ingest loop's batch_max)")
    ap.add_argument("--queue-max", type=int, default=1000, help="Settings.stream_queue_max (1000, the default)")
    ap.add_argument("--drain-s", type=float, default=20.0, help="max seconds to wait for clients to catch up (20)")
    ap.add_argument("--probe-http-s", type=float, default=5.0, help="seconds of the HTTP write-path probe (5; 0 = off)")
    ap.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="resume with Last-Event-ID after reconnect (default) or stop the client")
    ap.add_argument("--pg", action=argparse.BooleanOptionalAction, default=False,
                    help="PostgreSQL at OVERSEER_TEST_PG_URL instead of SQLite")
    ap.add_argument("--profile", metavar="PREFIX",
                    help="py-spy the server while writing (raw folded stacks to PREFIX.<clients>.txt)")
    ap.add_argument("--trace", action="store_true", help="the server prints streams/pool/writer progress each second")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    # internal: client worker mode
    ap.add_argument("--client-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--jwt-key", default=C.JWT_KEY, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client_worker:
        args.clients = int(args.clients)
        C.run(lambda: client_worker(args), loop=args.loop)
    else:
        C.run(lambda: orchestrate(args), loop="asyncio")


if __name__ == "__main__":
    main()

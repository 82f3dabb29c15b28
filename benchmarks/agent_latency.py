"""Overhead of Overseer on real agent turns, and how fast a killed agent is noticed.

(a) Text turn: wall time of one turn through Overseer (the real app with its runtime, over httpx's
    ASGI transport: ``POST /api/v1/workers/{id}/turns`` until the worker's ``worker.state_changed``
    to IDLE is published on the bus, i.e. committed) against the same turn driven by the minimal
    direct client (``overseer.testing.direct_clients``: ``turn/start`` until ``turn/completed`` for
    Codex, user message until ``result`` for Claude). Both agents run against the same
    :class:`ScriptedModelServer`, with the same prompt; the two are interleaved turn by turn so load
    changes hit both. Reported: median of each and the median of the per-pair ratios.
(b) Kill detection: a worker in a slow turn (``[[slow: 10]]``) has its process group SIGKILLed;
    measured from the kill to the worker's ``worker.state_changed`` -> FAILED and to the
    ``agent.exited`` event being published (both after their commit; the ``disconnected`` signal row
    is written by the ops pipeline in that same transaction, checked by a query afterwards).

    .venv/bin/python benchmarks/agent_latency.py [--turns 20] [--kills 10] [--kinds codex,claude_code]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from overseer.app import create_app
from overseer.auth.tokens import create_token
from overseer.config import Settings
from overseer.events.bus import PublishedEvent
from overseer.ops.projections import Signal
from overseer.testing.direct_clients import ClaudeDirectClient, CodexDirectClient
from overseer.testing.scripted_model import ScriptedModelServer

BIN = C.REPO / ".tools" / "agents" / "node_modules" / ".bin"
PROMPT = "hello there, please reply"
ACCESS = {"codex": "full-access", "claude_code": "default"}
"""Claude refuses bypassPermissions (full-access) as root; a text turn asks for nothing either way."""


class Direct:
    """The minimal direct client of one kind, one thread/session kept across turns."""

    def __init__(self, kind: str, model: ScriptedModelServer, root: Path, home: Path) -> None:
        self.kind = kind
        if kind == "codex":
            self.client: Any = CodexDirectClient(str(BIN / "codex"), openai_base_url=model.openai_base_url,
                                                 cwd=str(root), home=str(home))
            self.client.start()
            self.thread = self.client.start_thread(approval_policy="never", sandbox="danger-full-access")
        else:
            self.client = ClaudeDirectClient(str(BIN / "claude"), base_url=model.base_url, cwd=str(root),
                                             home=str(home))
            self.client.start()

    def turn(self, prompt: str) -> float:
        t0 = time.perf_counter()
        if self.kind == "codex":
            res = self.client.run_turn(self.thread, prompt, timeout=60)
            assert res.status == "completed", res
        else:
            res = self.client.run_turn(prompt, timeout=60)
            assert res.status == "success", res
        return time.perf_counter() - t0

    def close(self) -> None:
        self.client.close()


class Waiter:
    """Resolves futures when a matching event is published on the bus (after its commit)."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Any, asyncio.Future[float]]] = []

    def __call__(self, ev: PublishedEvent) -> None:
        for pred, fut in list(self.waiting):
            if not fut.done() and pred(ev):
                fut.set_result(time.perf_counter())
                self.waiting.remove((pred, fut))

    def expect(self, pred: Any) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting.append((pred, fut))
        return fut


async def bench(kind: str, args: argparse.Namespace, model: ScriptedModelServer) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"overseer-bench-agents-{kind}-"))
    root = tmp / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp / 'overseer.db'}", data_dir=tmp / "data",
                        jwt_secret=C.JWT_KEY, model_base_url=model.base_url,  # type: ignore[arg-type]
                        codex_bin=str(BIN / "codex"), claude_bin=str(BIN / "claude"), terminate_grace_s=2.0)
    token = create_token(C.JWT_KEY, subject="bench", scopes=["admin"], workspace_ids=["*"])
    app = create_app(settings, migrate_on_start=True)
    out: dict[str, Any] = {"kind": kind}
    direct: Direct | None = None
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as mgr, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=mgr.app), base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        waiter = Waiter()
        app.state.db.bus.add_listener(waiter)
        ws = (await client.post("/api/v1/workspaces", json={"name": "bench", "root_path": str(root)})).json()

        async def new_worker() -> dict[str, Any]:
            resp = await client.post("/api/v1/workers", json={"workspace_id": ws["id"], "kind": kind,
                                                              "config": {"access_mode": ACCESS[kind]}})
            assert resp.status_code == 201, resp.text
            return resp.json()  # type: ignore[no-any-return]

        # ---- (a) text turns, interleaved with the direct client
        if args.turns:
            w = await new_worker()
            direct = await asyncio.to_thread(Direct, kind, model, root, tmp / f"direct-home-{kind}")
            ov: list[float] = []
            dr: list[float] = []
            for i in range(args.turns + args.warmup):
                idle = waiter.expect(lambda e, wid=w["id"]: e.event_type == "worker.state_changed"
                                     and e.entity_id == wid and e.payload.get("to") == "IDLE")
                t0 = time.perf_counter()
                resp = await client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": PROMPT})
                assert resp.status_code == 202, resp.text
                t1 = await asyncio.wait_for(idle, 60)
                d = await asyncio.to_thread(direct.turn, PROMPT)
                if i >= args.warmup:
                    ov.append(t1 - t0)
                    dr.append(d)
            out["turn_overseer"] = ov
            out["turn_direct"] = dr
            await asyncio.to_thread(direct.close)
            direct = None
            await client.post(f"/api/v1/workers/{w['id']}/terminate")

        # ---- (b) SIGKILL detection
        to_failed: list[float] = []
        to_exited: list[float] = []
        signal_rows = 0
        for _ in range(args.kills):
            w = await new_worker()
            running = waiter.expect(lambda e, wid=w["id"]: e.event_type == "message.delta" and e.entity_id == wid)
            resp = await client.post(f"/api/v1/workers/{w['id']}/turns", json={"prompt": "long [[slow: 10]]"})
            assert resp.status_code == 202, resp.text
            await asyncio.wait_for(running, 30)  # the turn is streaming
            failed = waiter.expect(lambda e, wid=w["id"]: e.event_type == "worker.state_changed"
                                   and e.entity_id == wid and e.payload.get("to") == "FAILED")
            exited = waiter.expect(lambda e, wid=w["id"]: e.event_type == "agent.exited" and e.entity_id == wid)
            t0 = time.perf_counter()
            os.killpg(w["pid"], signal.SIGKILL)
            t_failed = await asyncio.wait_for(failed, 10)
            t_exited = await asyncio.wait_for(exited, 10)
            to_failed.append(t_failed - t0)
            to_exited.append(t_exited - t0)
            async with app.state.db.read_session() as s:
                rows = (await s.execute(select(Signal).where(Signal.kind == "disconnected",
                                                             Signal.worker_id == w["id"]))).scalars().all()
            signal_rows += len(rows)
        out["kill_to_failed"] = to_failed
        out["kill_to_exited"] = to_exited
        out["disconnected_signal_rows"] = signal_rows
    if direct is not None:
        direct.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2, help="turn pairs run first and not counted")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--kinds", default="codex", help="comma-separated: codex,claude_code")
    ap.add_argument("--runs", type=int, default=1, help="repeat everything (fresh app each time)")
    ap.add_argument("--pg", action=argparse.BooleanOptionalAction, default=False,
                    help="ignored: this benchmark runs on SQLite (agent time dominates)")
    ap.add_argument("--events", type=int, default=0, help="ignored (uniform CLI)")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = ap.parse_args(argv)
    C.header("agent latency (benchmarks/agent_latency.py)", {
        "agents": ", ".join(f"{k}: {BIN / ('codex' if k == 'codex' else 'claude')}" for k in args.kinds.split(",")),
        "turns": f"{args.turns} text turns (+{args.warmup} warm-up), prompt {PROMPT!r} (scripted reply, >=3 deltas); "
                 f"Overseer on SQLite, access_mode full-access (codex) / default (claude); direct client on its own process, same model server",
        "kills": f"{args.kills} workers killed (SIGKILL to the process group) mid-turn ([[slow: 10]])",
        "loop": args.loop,
    })
    with ScriptedModelServer() as model:
        for kind in args.kinds.split(","):
            for r in range(args.runs):
                res = C.run(lambda kind=kind: bench(kind, args, model), args.loop)
                print(f"{kind} run {r + 1}:")
                if res.get("turn_overseer"):
                    ov, dr = res["turn_overseer"], res["turn_direct"]
                    ratios = [o / d for o, d in zip(ov, dr, strict=True)]
                    print(f"  text turn: overseer median {C.median(ov) * 1000:7.1f} ms (p90 "
                          f"{C.percentile(ov, 90) * 1000:.1f}), direct median {C.median(dr) * 1000:7.1f} ms (p90 "
                          f"{C.percentile(dr, 90) * 1000:.1f}); median ratio {C.median(ratios):.2f}, ratio of "
                          f"medians {C.median(ov) / C.median(dr):.2f}, median overhead "
                          f"{(C.median(ov) - C.median(dr)) * 1000:+.1f} ms (n={len(ov)})")
                kf, ke = res["kill_to_failed"], res["kill_to_exited"]
                if kf:
                    print(f"  SIGKILL -> FAILED committed: median {C.median(kf) * 1000:6.1f} ms, max "
                          f"{max(kf) * 1000:6.1f} ms; -> agent.exited (+disconnected signal row) committed: median "
                          f"{C.median(ke) * 1000:6.1f} ms, max {max(ke) * 1000:6.1f} ms (n={len(kf)}; "
                          f"disconnected signal rows found: {res['disconnected_signal_rows']})")
    print(f"# load after: {C.uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

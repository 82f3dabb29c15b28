"""``overseer demo``: real Codex and Claude Code agents, offline, under supervision.

Starts the scripted model server on 127.0.0.1, then ``overseer serve`` (API + runtime) on the
embedded SQLite default in ``./.data/demo`` (or ``$OVERSEER_DATA_DIR``), creates two workspaces (fresh
git repositories), a Codex worker and a Claude Code worker, dispatches one contract to both, and leaves one approval
waiting for the person at the keyboard. It prints where to look and how to approve, then streams the
event log until Ctrl-C (or ``--exit-after`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from overseer import gctune
from overseer.app import create_app
from overseer.auth.tokens import create_token
from overseer.config import REPO_ROOT, Settings
from overseer.events.bus import PublishedEvent
from overseer.testing.scripted_model import ScriptedModelServer

QUIET_EVENTS = {"message.delta", "command.output_delta", "status", "token_usage"}


def _git_repo(path: Path, name: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text(f"# {name}\n\nA demo workspace supervised by Overseer.\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "overseer", "GIT_AUTHOR_EMAIL": "demo@overseer.local",
           "GIT_COMMITTER_NAME": "overseer", "GIT_COMMITTER_EMAIL": "demo@overseer.local"}
    for cmd in (["git", "init", "-q"], ["git", "add", "README.md"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=path, env=env, check=True)


def _describe(ev: PublishedEvent) -> str:
    p = ev.payload
    detail = ""
    if ev.event_type == "worker.state_changed":
        detail = f"{p.get('from')} -> {p.get('to')} ({p.get('reason')})"
    elif ev.event_type == "approval.requested":
        detail = f"APPROVAL NEEDED: {p.get('command') or p.get('tool_name') or p.get('diff', '')[:60]}"
    elif ev.event_type == "turn.completed":
        detail = f"{p.get('status')}: {str(p.get('final_message') or p.get('error') or '')[:80]}"
    elif ev.event_type in ("item.started", "item.completed"):
        detail = f"{p.get('item_type')} {p.get('command') or ''}".strip()
    elif ev.event_type == "approval.decided":
        detail = f"{p.get('decision')} by {p.get('by')}"
    return f"  #{ev.id:<5} {ev.event_type:<22} {p.get('agent_kind', ''):<12} {detail}"


async def _demo(port: int, exit_after: float | None) -> int:
    data_dir = Path(os.environ.get("OVERSEER_DATA_DIR") or REPO_ROOT / ".data" / "demo")
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    model = ScriptedModelServer()
    model.start()
    settings = Settings(data_dir=data_dir, model_base_url=model.base_url, port=port, host="127.0.0.1",
                        database_url=None, jwt_secret=None)
    app = create_app(settings)
    gctune.apply(settings)  # as `overseer serve` does
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=port, log_level="warning"))
    serve_task = asyncio.create_task(server.serve())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not server.started:
            if serve_task.done():
                await serve_task
                return 1
            await asyncio.sleep(0.05)
        base = settings.resolved_public_url
        token = create_token(settings.jwt_key(), subject="demo-admin", scopes=["admin"], workspace_ids=["*"],
                             ttl=timedelta(days=1))
        app.state.db.bus.add_listener(lambda ev: None if ev.event_type in QUIET_EVENTS else print(_describe(ev)))
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                     timeout=60) as http:
            workspaces = {}
            for name in ("alpha", "beta"):
                root = data_dir / "workspaces" / name
                _git_repo(root, name)
                r = await http.post("/api/v1/workspaces", json={"name": name, "root_path": str(root)})
                r.raise_for_status()
                workspaces[name] = r.json()
            print("\nStarting a Codex worker in 'alpha' and a Claude Code worker in 'beta' (real binaries)...")
            codex = (await http.post("/api/v1/workers", json={"workspace_id": workspaces["alpha"]["id"],
                                                              "kind": "codex", "name": "codex-alpha"})).json()
            claude = (await http.post("/api/v1/workers", json={"workspace_id": workspaces["beta"]["id"],
                                                               "kind": "claude_code", "name": "claude-beta"})).json()
            for w in (codex, claude):
                if "error" in w:
                    print(f"worker failed to start: {w['error']}")
                    return 1
            # One dispatch reaches both workspaces in one cycle (an overseer.dispatch.v1 contract).
            contract = {"version": "overseer.dispatch.v1", "actions": [
                {"action_id": "beta-describe", "type": "dispatch_turn", "workspace_id": workspaces["beta"]["id"],
                 "worker_id": claude["id"], "agent_kind": "claude_code", "dedupe_key": "demo-beta-1",
                 "prompt": "Describe this repository in one line."},
                {"action_id": "alpha-greet", "type": "dispatch_turn", "workspace_id": workspaces["alpha"]["id"],
                 "worker_id": codex["id"], "dedupe_key": "demo-alpha-1",
                 "prompt": "Record a greeting. [[run: echo 'hello from codex' > greeting.txt]]"},
            ]}
            result = (await http.post("/api/v1/ops/dispatch", json=contract)).json()
            for r in result.get("results", []):
                print(f"  dispatched {r['action_id']}: {r['status']} thread {r.get('thread_id')}")
            approval = None
            for _ in range(300):
                pending = (await http.get("/api/v1/ops/approvals")).json()
                if pending:
                    approval = pending[0]
                    break
                await asyncio.sleep(0.1)
        from overseer.web.auth import create_login_link

        login_link = create_login_link(settings, settings.jwt_key(), subject="demo-admin", scopes=["admin"],
                                       workspace_ids=["*"], base_url=base)
        _banner(base, token, approval, workspaces, login_link=login_link, data_dir=data_dir)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, serve_task], timeout=exit_after, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        return 0 if approval else 1
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serve_task, 30)
        model.stop()


def _banner(base: str, token: str, approval: dict[str, Any] | None, workspaces: dict[str, Any],
            login_link: str | None = None, data_dir: Path | None = None) -> None:
    print("\n" + "=" * 78)
    print(f" Overseer is running at {base}   (API docs: {base}/docs)")
    listing = ", ".join(f"{n} ({w['root_path']})" for n, w in workspaces.items())
    print(f" Workspaces: {listing}")
    if login_link:
        print("\n Open the live page (this sign-in link works once, within 2 minutes):")
        print(f"   {login_link}")
        env = f"OVERSEER_DATA_DIR={data_dir} " if data_dir else ""
        print(f"   a new link: {env}.venv/bin/overseer open --url {base}")
    print("\n Use it from another terminal:")
    print(f"   export OVERSEER_URL={base}")
    print(f"   export OVERSEER_TOKEN={token}")
    print("   .venv/bin/overseer workers          # what every agent is doing")
    print("   .venv/bin/overseer approvals        # what is waiting for you")
    if approval:
        print(f"\n Codex asks to run: {approval.get('command')}")
        print(f"   .venv/bin/overseer approve {approval['id']}    (or: overseer deny {approval['id']}, or the live page)")
        print(f"   curl -X POST -H \"Authorization: Bearer $OVERSEER_TOKEN\" -H 'content-type: application/json' "
              f"-d '{{\"decision\":\"accept\"}}' {base}/api/v1/ops/approvals/{approval['id']}")
    else:
        print("\n No approval arrived (check the log above).")
    print("\n Events stream below. Ctrl-C stops Overseer and every agent it started.")
    print("=" * 78 + "\n", flush=True)


def run_demo(*, port: int = 8787, exit_after: float | None = None) -> int:
    return asyncio.run(_demo(port, exit_after))

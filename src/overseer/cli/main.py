"""``overseer``: serve, migrate, mint tokens, run the scripted model, the demo, and drive workers.

Every command that acts on agents calls the HTTP API (parity: the CLI can do nothing a script
cannot), and prints the API's error code and message on failure (exit 1).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from overseer.cli.client import ApiError, Client

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Overseer: a supervisor for AI coding agents.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
token_app = typer.Typer(no_args_is_help=True, help="JWT tokens.")
worker_app = typer.Typer(no_args_is_help=True, help="Control one worker.")
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(worker_app, name="worker")
console = Console()

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="OVERSEER_URL", help="Overseer base URL")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="OVERSEER_TOKEN", help="A JWT")]


def _fail(exc: ApiError) -> None:
    console.print(f"[red]error[/red] {exc}")
    raise typer.Exit(1)


def _parse_ttl(ttl: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return timedelta(seconds=float(ttl[:-1]) * units[ttl[-1]]) if ttl[-1] in units else timedelta(
            seconds=float(ttl))
    except (ValueError, IndexError) as exc:
        raise typer.BadParameter(f"bad TTL {ttl!r}; use e.g. 30m, 1h, 7d") from exc


@app.command()
def serve(host: Annotated[str | None, typer.Option()] = None, port: Annotated[int | None, typer.Option()] = None,
          log_level: str = "info") -> None:
    """Serve the API, the live page and the runtime (one process, embedded SQLite by default)."""
    import uvicorn

    from overseer import gctune
    from overseer.app import create_app
    from overseer.config import get_settings
    from overseer.logging import configure_logging

    settings = get_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    configure_logging(log_level)
    app = create_app(settings)
    gctune.apply(settings)  # after the imports and the app are built, before the load
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, timeout_graceful_shutdown=10)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the configured database up to REVISION (default head)."""
    from overseer.config import get_settings
    from overseer.db import migrate
    from overseer.db.engine import make_engine

    async def go() -> None:
        engine = make_engine(get_settings().resolved_database_url)
        get_settings().data_dir.mkdir(parents=True, exist_ok=True)
        try:
            await migrate.upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(go())
    console.print(f"upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = "base") -> None:
    """Migrate the configured database down to REVISION (default base: drops everything)."""
    from overseer.config import get_settings
    from overseer.db import migrate
    from overseer.db.engine import make_engine

    async def go() -> None:
        engine = make_engine(get_settings().resolved_database_url)
        try:
            await migrate.downgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(go())
    console.print(f"downgraded to {revision}")


@token_app.command("create")
def token_create(
    sub: Annotated[str, typer.Option("--sub", help="Subject (who the token is for)")],
    workspace: Annotated[list[str], typer.Option("--workspace", help="Workspace id (repeatable); '*' = all (admin)")],
    scope: Annotated[list[str], typer.Option("--scope", help="Scope (repeatable or space-separated)")],
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime, e.g. 30m, 1h, 7d")] = "1h",
) -> None:
    """Print a signed token."""
    from overseer.auth.scopes import Scope
    from overseer.auth.tokens import create_token
    from overseer.config import get_settings

    scopes = [s for part in scope for s in part.split()]
    valid = {s.value for s in Scope}
    bad = [s for s in scopes if s not in valid]
    if bad:
        raise typer.BadParameter(f"unknown scope(s) {bad}; valid: {sorted(valid)}")
    if "*" in workspace and "admin" not in scopes:
        raise typer.BadParameter("--workspace '*' needs --scope admin")
    print(create_token(get_settings().jwt_key(), subject=sub, scopes=scopes, workspace_ids=workspace,
                       ttl=_parse_ttl(ttl)))


@app.command("model-server")
def model_server(host: str = "127.0.0.1", port: int = 18080) -> None:
    """Run the scripted model server (OpenAI Responses + Anthropic Messages) until interrupted."""
    from overseer.testing.scripted_model import main

    raise typer.Exit(main(["--host", host, "--port", str(port)]))


@app.command()
def demo(
    exit_after: Annotated[float | None, typer.Option(help="Stop after N seconds (for CI); default: run until Ctrl-C")
                          ] = None,
    port: Annotated[int, typer.Option()] = 8787,
) -> None:
    """Run real Codex and Claude Code agents offline against the scripted model, under supervision."""
    from overseer.cli.demo import run_demo

    raise typer.Exit(run_demo(port=port, exit_after=exit_after))


# ---------------------------------------------------------------- workers

def _workers_table(workers: list[dict[str, Any]]) -> Table:
    table = Table("id", "workspace", "kind", "status", "liveness", "thread", "turn", "tokens", "last error")
    for w in workers:
        table.add_row(w["id"][:8], w["workspace_id"][:8], w["kind"], w["status"], w.get("liveness", ""),
                      (w.get("thread_id") or "")[:12], (w.get("active_turn_id") or "")[:12], str(w["tokens_used"]),
                      (w.get("last_error") or "")[:40])
    return table


@app.command()
def workers(url: UrlOpt = None, token: TokenOpt = None) -> None:
    """List workers."""
    try:
        console.print(_workers_table(Client(url, token).get("/api/v1/workers")["workers"]))
    except ApiError as exc:
        _fail(exc)


def _resolve_worker(client: Client, ref: str) -> str:
    if len(ref) >= 32:
        return ref
    matches = [w["id"] for w in client.get("/api/v1/workers")["workers"] if w["id"].startswith(ref)]
    if len(matches) != 1:
        raise typer.BadParameter(f"worker {ref!r} matches {len(matches)} workers")
    return matches[0]


@worker_app.command("start")
def worker_start(kind: Annotated[str, typer.Argument(help="codex | claude_code")],
                 workspace: Annotated[str, typer.Option("--workspace", "--ws")],
                 access_mode: str = "default", model: str | None = None,
                 url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Start a worker in a workspace (id or name)."""
    client = Client(url, token)
    try:
        ws = next((w for w in client.get("/api/v1/workspaces") if workspace in (w["id"], w["name"])), None)
        if ws is None:
            raise typer.BadParameter(f"no workspace {workspace!r}")
        w = client.post("/api/v1/workers", json={"workspace_id": ws["id"], "kind": kind,
                                                 "config": {"access_mode": access_mode, "model": model}})
        console.print_json(json.dumps(w))
    except ApiError as exc:
        _fail(exc)


def _worker_action(action: str) -> Any:
    def run(worker: Annotated[str, typer.Argument(help="worker id (or unique prefix)")],
            url: UrlOpt = None, token: TokenOpt = None) -> None:
        client = Client(url, token)
        try:
            w = client.post(f"/api/v1/workers/{_resolve_worker(client, worker)}/{action}")
            console.print(f"{w['id']} {w['status']}")
        except ApiError as exc:
            _fail(exc)

    run.__doc__ = f"{action.capitalize()} a worker."
    return run


for _action in ("pause", "resume", "terminate"):
    worker_app.command(_action)(_worker_action(_action))


@app.command()
def send(worker: str, prompt: str, thread: Annotated[str | None, typer.Option("--thread")] = None,
         url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Send WORKER a turn with PROMPT (passed as data, never through a shell)."""
    client = Client(url, token)
    try:
        turn = client.post(f"/api/v1/workers/{_resolve_worker(client, worker)}/turns",
                           json={"prompt": prompt, "thread_id": thread})
        console.print(f"thread {turn['thread_id']} turn {turn['turn_id']}")
    except ApiError as exc:
        _fail(exc)


@app.command()
def approvals(url: UrlOpt = None, token: TokenOpt = None) -> None:
    """List pending approvals."""
    try:
        rows = Client(url, token).get("/api/v1/ops/approvals")
    except ApiError as exc:
        _fail(exc)
        return
    table = Table("id", "workspace", "worker", "kind", "command / diff", "since")
    for a in rows:
        table.add_row(a["id"], a["workspace_id"][:8], a["worker_id"][:8], a["kind"],
                      (a.get("command") or a.get("diff") or a.get("tool_name") or "")[:60], a["created_at"][11:19])
    console.print(table)


def _decide(approval: str, decision: str, url: str | None, token: str | None) -> None:
    client = Client(url, token)
    try:
        if len(approval) < 32:
            ids = [a["id"] for a in client.get("/api/v1/ops/approvals") if a["id"].startswith(approval)]
            if len(ids) != 1:
                raise typer.BadParameter(f"approval {approval!r} matches {len(ids)} pending approvals")
            approval = ids[0]
        row = client.post(f"/api/v1/ops/approvals/{approval}", json={"decision": decision})
        console.print(f"{row['id']} {row['status']}")
    except ApiError as exc:
        _fail(exc)


@app.command()
def approve(approval: str, session: Annotated[bool, typer.Option("--for-session")] = False,
            url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Accept a pending approval (id or unique prefix)."""
    _decide(approval, "accept_for_session" if session else "accept", url, token)


@app.command()
def deny(approval: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Decline a pending approval (id or unique prefix)."""
    _decide(approval, "decline", url, token)


def main() -> None:
    try:
        app()
    except ApiError as exc:  # pragma: no cover - commands catch their own
        console.print(f"[red]error[/red] {exc}")
        sys.exit(1)


# ---------------------------------------------------------------- dispatch (CM-005, CM-006)

def _print_violations(exc: ApiError) -> None:
    err = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
    for v in (err.get("details") or {}).get("violations") or []:
        console.print(f"  {v.get('path')}  [bold]{v.get('code')}[/bold]  {v.get('message')}")


@app.command("dispatch")
def dispatch_cmd(
    ws: Annotated[str | None, typer.Option("--ws", help="Workspace names or ids, comma-separated")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="The prompt of each turn")] = None,
    kind: Annotated[str, typer.Option("--kind", help="codex | claude_code")] = "codex",
    dedupe_key: Annotated[str | None, typer.Option("--dedupe-key", help="Idempotency key (per workspace)")] = None,
    thread: Annotated[str | None, typer.Option("--thread", help="Continue this thread (one workspace only)")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
    effort: Annotated[str | None, typer.Option("--effort", help="minimal | low | medium | high")] = None,
    access_mode: Annotated[str | None, typer.Option("--access-mode", help="read-only | default | full-access")
                           ] = None,
    contract: Annotated[str | None, typer.Option("--contract", help="An overseer.dispatch.v1 JSON file ('-': stdin)")
                        ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw response")] = False,
    url: UrlOpt = None, token: TokenOpt = None,
) -> None:
    """Dispatch turns to many workspaces at once: --ws a,b --prompt "...", or a whole --contract FILE.

    Exits 1 when the contract is rejected (every violation is printed) or when any action failed.
    """
    from pathlib import Path

    if (contract is None) == (ws is None or prompt is None):
        raise typer.BadParameter("give either --contract FILE, or --ws and --prompt")
    if contract is not None and any(v is not None for v in (ws, prompt, dedupe_key, thread, model, effort,
                                                            access_mode)):
        raise typer.BadParameter("--contract cannot be combined with --ws/--prompt options")
    client = Client(url, token)
    try:
        names: dict[str, str] = {w["id"]: w["name"] for w in client.get("/api/v1/workspaces")}
        if contract is not None:
            try:
                text = sys.stdin.read() if contract == "-" else Path(contract).read_text(encoding="utf-8")
                body = json.loads(text)
            except (OSError, ValueError) as exc:
                raise typer.BadParameter(f"cannot read contract {contract!r}: {exc}") from exc
        else:
            assert ws is not None and prompt is not None
            refs = [r.strip() for r in ws.split(",") if r.strip()]
            if thread and len(refs) != 1:
                raise typer.BadParameter("--thread needs exactly one workspace")
            by_name = {n: i for i, n in names.items()}
            actions = []
            for n, ref in enumerate(refs, 1):
                ws_id = ref if ref in names else by_name.get(ref)
                if ws_id is None:
                    raise typer.BadParameter(f"no workspace {ref!r}")
                action: dict[str, Any] = {"type": "dispatch_turn", "action_id": f"{n}-{names[ws_id]}"[:100],
                                          "workspace_id": ws_id, "prompt": prompt, "agent_kind": kind}
                extra = {"dedupe_key": dedupe_key, "thread_id": thread, "model": model, "effort": effort,
                         "access_mode": access_mode}
                action.update({k: v for k, v in extra.items() if v is not None})
                actions.append(action)
            body = {"version": "overseer.dispatch.v1", "actions": actions}
        out = client.post("/api/v1/ops/dispatch", json=body)
    except ApiError as exc:
        console.print(f"[red]error[/red] {exc}")
        _print_violations(exc)
        raise typer.Exit(1) from None
    results = out.get("results", [])
    if as_json:
        console.print_json(json.dumps(out))
    else:
        table = Table("action", "workspace", "status", "worker", "thread", "turn", "note")
        for r in results:
            note = f"{r['error']['code']}: {r['error']['message']}" if r.get("error") else (
                "replayed" if r.get("idempotent_replay") else "")
            table.add_row(r["action_id"], names.get(r.get("workspace_id") or "", r.get("workspace_id") or ""),
                          r["status"], (r.get("worker_id") or "")[:8], (r.get("thread_id") or "")[:12],
                          (r.get("turn_id") or "")[:12], note[:80])
        console.print(table)
    if any(r["status"] != "dispatched" for r in results):
        raise typer.Exit(1)


from overseer.cli import ops as _ops  # noqa: E402,F401  (registers status/feed)

# ---------------------------------------------------------------- chat (issue 6 item 5)

@app.command("chat")
def chat_cmd(text: Annotated[str, typer.Argument(help='A command (/help, /status, /dispatch --ws a,b --prompt "...") '
                                                     "or a request for the planner")],
             as_json: Annotated[bool, typer.Option("--json", help="Print the raw messages")] = False,
             url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Send one message to the Supervisor chat and print the replies."""
    client = Client(url, token, timeout=120.0)
    try:
        out = client.post("/api/v1/chat/messages", json={"text": text})
    except ApiError as exc:
        _fail(exc)
        return
    replies = [m for m in out.get("messages", []) if m.get("role") != "user"]
    if as_json:
        console.print_json(json.dumps(replies))
        return
    for m in replies:
        console.print(m.get("text", ""), markup=False, highlight=False)




# ---------------------------------------------------------------- jobs and quotas (issue 5)

job_app = typer.Typer(no_args_is_help=True, help="Submit, spawn, show and cancel jobs.")
app.add_typer(job_app, name="job")


def _age(iso: str | None) -> str:
    from datetime import UTC, datetime

    if not iso:
        return ""
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _all_jobs(client: Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.get("/api/v1/jobs", params={**params, "limit": 500, "offset": len(items)})
        items.extend(page["items"])
        if len(items) >= page["total"] or not page["items"]:
            return items


def _resolve_job(client: Client, ref: str) -> str:
    if len(ref) >= 32:
        return ref
    matches = [j["id"] for j in _all_jobs(client) if j["id"].startswith(ref)]
    if len(matches) != 1:
        raise typer.BadParameter(f"job {ref!r} matches {len(matches)} jobs")
    return matches[0]


def _job_line(j: dict[str, Any]) -> str:
    colors = {"COMPLETED": "green", "FAILED": "red", "CANCELED": "yellow", "RUNNING": "cyan", "PENDING": "white"}
    waiting = f"  [dim]waiting: {j['waiting'].get('reason')}[/dim]" if j.get("waiting") else ""
    worker = (j.get("worker_id") or "-")[:8]
    prompt = j["prompt"].replace("\n", " ")[:50]
    return (f"d{j['depth']} [{colors.get(j['status'], 'white')}]{j['status']}[/] {j['id'][:8]} worker {worker} "
            f"age {_age(j['created_at'])}  {prompt}{waiting}")


def _workspace_id(client: Client, ref: str | None) -> str | None:
    if ref is None:
        return None
    ws = next((w for w in client.get("/api/v1/workspaces") if ref in (w["id"], w["name"])), None)
    if ws is None:
        raise typer.BadParameter(f"no workspace {ref!r}")
    return str(ws["id"])


@app.command("jobs")
def jobs_cmd(ws: Annotated[str | None, typer.Option("--ws", help="Workspace name or id")] = None,
             status: Annotated[str | None, typer.Option("--status")] = None,
             as_json: Annotated[bool, typer.Option("--json")] = False,
             url: UrlOpt = None, token: TokenOpt = None) -> None:
    """The job trees: depth, status, worker and age of every job (children under their parent)."""
    from rich.tree import Tree

    client = Client(url, token)
    try:
        params = {k: v for k, v in {"workspace_id": _workspace_id(client, ws), "status": status}.items() if v}
        rows = _all_jobs(client, **params)
    except ApiError as exc:
        _fail(exc)
        return
    if as_json:
        console.print_json(json.dumps(rows))
        return
    by_id = {j["id"]: j for j in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for j in rows:
        parent = j.get("parent_job_id") if j.get("parent_job_id") in by_id else None
        children.setdefault(parent, []).append(j)
    root = Tree(f"jobs ({len(rows)})")

    def add(node: Any, parent_id: str | None) -> None:
        for j in children.get(parent_id, []):
            add(node.add(_job_line(j)), j["id"])

    add(root, None)
    console.print(root)


@job_app.command("submit")
def job_submit(prompt: Annotated[str, typer.Option("--prompt")],
               ws: Annotated[str | None, typer.Option("--ws", help="Workspace name or id")] = None,
               parent: Annotated[str | None, typer.Option("--parent")] = None,
               depends_on: Annotated[str | None, typer.Option("--depends-on", help="Job ids, comma-separated")] = None,
               kind: Annotated[str | None, typer.Option("--kind", help="codex | claude_code")] = None,
               access_mode: Annotated[str | None, typer.Option("--access-mode")] = None,
               priority: int = 0, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Submit a job (a root, or a child with --parent)."""
    client = Client(url, token)
    try:
        body: dict[str, Any] = {"prompt": prompt, "priority": priority,
                                "depends_on": [d.strip() for d in (depends_on or "").split(",") if d.strip()]}
        extra = {"workspace_id": _workspace_id(client, ws), "parent_job_id": _resolve_job(client, parent)
                 if parent else None, "agent_kind": kind, "access_mode": access_mode}
        body.update({k: v for k, v in extra.items() if v is not None})
        j = client.post("/api/v1/jobs", json=body)
        console.print(f"{j['id']} depth {j['depth']} {j['status']}")
    except ApiError as exc:
        _fail(exc)


@job_app.command("spawn")
def job_spawn(prompt: Annotated[str, typer.Option("--prompt")],
              kind: Annotated[str | None, typer.Option("--kind", help="codex | claude_code")] = None,
              depends_on: Annotated[str | None, typer.Option("--depends-on", help="Job ids, comma-separated")] = None,
              priority: int = 0, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """From inside a job's agent: spawn a child of this job ($OVERSEER_JOB_ID, with $OVERSEER_TOKEN)."""
    import os

    parent = os.environ.get("OVERSEER_JOB_ID")
    if not parent:
        console.print("[red]error[/red] OVERSEER_JOB_ID is not set: run this inside a job's agent, or use "
                      "`overseer job submit --parent`")
        raise typer.Exit(1)
    client = Client(url, token)
    try:
        body: dict[str, Any] = {"prompt": prompt, "parent_job_id": parent, "priority": priority,
                                "depends_on": [d.strip() for d in (depends_on or "").split(",") if d.strip()]}
        if kind:
            body["agent_kind"] = kind
        j = client.post("/api/v1/jobs", json=body)
        console.print(f"spawned job {j['id']} depth {j['depth']} {j['status']}")
    except ApiError as exc:
        _fail(exc)


@job_app.command("show")
def job_show(job: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """A job with its children, allocations, turns and result."""
    client = Client(url, token)
    try:
        console.print_json(json.dumps(client.get(f"/api/v1/jobs/{_resolve_job(client, job)}")))
    except ApiError as exc:
        _fail(exc)


@job_app.command("cancel")
def job_cancel(job: str, reason: Annotated[str | None, typer.Option("--reason")] = None,
               url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Cancel a job and its unfinished descendants (a running turn is interrupted)."""
    client = Client(url, token)
    try:
        j = client.post(f"/api/v1/jobs/{_resolve_job(client, job)}/cancel", json={"reason": reason} if reason else None)
        console.print(f"{j['id']} {j['status']}")
    except ApiError as exc:
        _fail(exc)


@app.command("quotas")
def quotas_cmd(url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Worker quotas per depth (per workspace and node-wide) with current use."""
    client = Client(url, token)
    try:
        data = client.get("/api/v1/resources/quotas")
        names = {w["id"]: w["name"] for w in client.get("/api/v1/workspaces")}
    except ApiError as exc:
        _fail(exc)
        return
    table = Table("workspace", "depth", "in use", "max workers", "source")
    for q in data["quotas"]:
        if q["source"] == "global" and q["max_workers"] is None and not q["in_use"]:
            continue
        ws_name = "(node)" if q["workspace_id"] is None else names.get(q["workspace_id"], q["workspace_id"][:8])
        cap = "-" if q["max_workers"] is None else str(q["max_workers"])
        table.add_row(ws_name, str(q["depth"]), str(q["in_use"]), cap, q["source"])
    console.print(f"max depth {data['max_job_depth']} (0..{data['max_job_depth'] - 1}), default "
                  f"{data['default_max_workers']} workers per depth per workspace")
    console.print(table)


@app.command("mcp")
def mcp_cmd() -> None:
    """Serve Overseer's MCP tools (spawn_job, get_job, wait_job, report_progress) on stdio for a job's agent."""
    from overseer.jobs.mcp_server import main as serve_mcp

    serve_mcp()


# ---------------------------------------------------------------- the live page (issue 6)

@app.command("open")
def open_cmd(
    workspace: Annotated[list[str] | None, typer.Option(
        "--workspace", "--ws", help="Workspace id or name (repeatable); default: every workspace (admin)")] = None,
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="Scope (repeatable or space-separated); default: admin, or read+write with --workspace")] = None,
    sub: Annotated[str | None, typer.Option("--sub", help="Who signs in (default: your user name)")] = None,
    url: UrlOpt = None,
) -> None:
    """Print a one-time sign-in link for the live page (valid 2 minutes, single use; 12 h session).

    Runs on the machine that serves Overseer: the link is signed with the local data directory's key.
    """
    import getpass

    from overseer.auth.scopes import Scope
    from overseer.config import get_settings
    from overseer.web.auth import create_login_link

    settings = get_settings()
    scopes = [s for part in (scope or []) for s in part.split()]
    valid = {s.value for s in Scope}
    bad = [s for s in scopes if s not in valid]
    if bad:
        raise typer.BadParameter(f"unknown scope(s) {bad}; valid: {sorted(valid)}")
    refs = [r.strip() for part in (workspace or []) for r in part.split(",") if r.strip()]
    ids: list[str] = ["*"]
    if refs:
        import uuid

        ids = []
        names: dict[str, str] | None = None
        for ref in refs:
            try:
                ids.append(str(uuid.UUID(ref)))
                continue
            except ValueError:
                pass
            if names is None:  # a name: ask the API (with a local admin token)
                try:
                    names = {w["name"]: w["id"] for w in Client(url, None).get("/api/v1/workspaces")}
                except ApiError as exc:
                    _fail(exc)
                    return
            if ref not in names:
                raise typer.BadParameter(f"no workspace {ref!r}")
            ids.append(names[ref])
        scopes = scopes or ["supervisor:read", "supervisor:write", "jobs:read", "jobs:write"]
    else:
        scopes = scopes or ["admin"]
        if "admin" not in scopes:
            raise typer.BadParameter("a link for every workspace needs --scope admin (or name a --workspace)")
    base = url or settings.resolved_public_url
    link = create_login_link(settings, settings.jwt_key(), subject=sub or getpass.getuser(), scopes=scopes,
                             workspace_ids=ids, base_url=base)
    print(link)
    Console(stderr=True).print(f"[dim]Open it in a browser within 2 minutes (works once); signs in "
                  f"{'every workspace' if ids == ['*'] else ', '.join(ids)} as {' '.join(sorted(scopes))} "
                  f"for 12 hours.[/dim]", highlight=False)


if __name__ == "__main__":
    main()

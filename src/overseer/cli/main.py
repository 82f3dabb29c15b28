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

    from overseer.app import create_app
    from overseer.config import get_settings
    from overseer.logging import configure_logging

    settings = get_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    configure_logging(log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                timeout_graceful_shutdown=10)


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

if __name__ == "__main__":
    main()

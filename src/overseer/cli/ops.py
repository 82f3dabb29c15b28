"""``overseer status`` and ``overseer feed``: the live picture from the terminal (issue 4 item 10)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from overseer.cli.client import ApiError, Client
from overseer.cli.main import TokenOpt, UrlOpt, _fail, app, console

NOISE = {"message.delta", "command.output_delta", "status", "token_usage"}
ATTENTION = ("waiting_input", "failed", "stalled", "running", "idle", "completed")
"""Threads in the order a person reads them (as the snapshot lists them: ``ops.read.THREAD_STATUSES``)."""


def _ago(iso: str | None) -> str:
    if not iso:
        return "-"
    secs = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    return f"{int(secs)}s" if secs < 120 else f"{int(secs // 60)}m" if secs < 7200 else f"{int(secs // 3600)}h"


@app.command()
def status(workspace: Annotated[str | None, typer.Argument(help="workspace name or id")] = None,
           url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Workspaces and threads: current task, last activity, next step, blockers.

    The snapshot lists the fleet's most urgent threads and counts the rest; with ``workspace``, every
    thread of that workspace is listed (``GET /api/v1/ops/threads``)."""
    client = Client(url, token)
    try:
        snap = client.get("/api/v1/ops/snapshot")
        for ws in snap["workspaces"]:
            if workspace in (ws["name"], ws["id"]):
                items = client.get("/api/v1/ops/threads", params={"workspace_id": ws["id"], "limit": 500})["items"]
                rank = {status: i for i, status in enumerate(ATTENTION)}
                ws["threads"] = sorted(items, key=lambda t: rank.get(t["status"], len(rank)))  # newest first within
    except ApiError as exc:
        _fail(exc)
        return
    table = Table("workspace", "health", "thread", "status", "current task", "last activity", "next step",
                  "blockers", "signals")
    for ws in snap["workspaces"]:
        if workspace and workspace not in (ws["name"], ws["id"]):
            continue
        threads = ws["threads"] or [None]
        for i, th in enumerate(threads):
            table.add_row(
                ws["name"] if i == 0 else "", ws["health"] if i == 0 else "",
                (th["thread_id"][:12] if th else "-"), th["status"] if th else "",
                ((th or ws).get("current_task") or "")[:50], _ago((th or ws).get("last_activity_at")),
                ((th or ws).get("next_step") or "")[:40],
                "; ".join(b["text"] for b in (th or ws).get("blockers", []))[:50],
                str(ws["unacked_signals"]) if i == 0 else "")
        if (more := ws.get("threads_total", 0) - len(ws["threads"])) > 0:  # the snapshot lists the most urgent
            by_status = ", ".join(f"{n} {s}" for s, n in ws.get("threads_by_status", {}).items())
            table.add_row("", "", f"[dim]+{more} more[/dim]", "", f"[dim]all {ws['threads_total']}: {by_status}[/dim]",
                          "", "", "", "")
    console.print(table)
    counts = snap["counts"]
    console.print(f"{counts['needs_input']} waiting for you, {counts['unacked_signals']} unacknowledged signals")


def _line(item: dict[str, Any]) -> str:
    p = item["payload"]
    detail = p.get("command") or p.get("final_message") or p.get("error") or p.get("reason") or p.get("to") or ""
    mark = "[bold yellow]NEEDS YOU[/bold yellow] " if item.get("needs_input") else ""
    return (f"#{item['id']:<6} {item['created_at'][11:19]} {item['workspace_id'][:8]} {mark}"
            f"{item['event_type']:<22} {str(detail)[:80]}")


@app.command()
def feed(needs_input: Annotated[bool, typer.Option("--needs-input", help="only what waits for you")] = False,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming new events")] = False,
         limit: int = 50, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """The unified activity feed, newest last; ``--follow`` streams it live (SSE, resumes by id)."""
    client = Client(url, token)
    try:
        page = client.get("/api/v1/ops/feed", params={"limit": limit, "needs_input": needs_input})
    except ApiError as exc:
        _fail(exc)
        return
    items = list(reversed(page["items"]))
    for item in items:
        console.print(_line(item))
    if not follow:
        return
    last_id = items[-1]["id"] if items else None
    headers = {"Last-Event-ID": str(last_id)} if last_id else {}
    while True:
        try:
            with client.http.stream("GET", "/api/v1/ops/stream", headers=headers, timeout=None) as resp:
                event, data = None, None
                for line in resp.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = json.loads(line[5:].strip())
                    elif line == "" and data is not None:
                        if event == "reconnect":
                            break
                        if isinstance(data, dict) and "event_type" in data:
                            headers = {"Last-Event-ID": str(data["id"])}
                            if data["event_type"] not in NOISE and (
                                    not needs_input or data["event_type"] in ("approval.requested",
                                                                              "question.requested")):
                                console.print(_line({**data, "needs_input": data["event_type"].endswith("requested")}))
                        event, data = None, None
        except httpx.HTTPError as exc:
            console.print(f"[dim]stream interrupted ({exc}); reconnecting[/dim]")
        except KeyboardInterrupt:
            return

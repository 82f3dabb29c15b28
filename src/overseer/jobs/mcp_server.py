"""``overseer mcp``: a stdio MCP server through which a job's agent spawns and follows sub-jobs (UC-5).

Tools (each calls the REST API with ``OVERSEER_URL`` / ``OVERSEER_TOKEN`` from the environment, so it can do
exactly what the job's token allows: children of its own job, reads in its workspace):

- ``spawn_job(prompt, agent_kind?, depends_on?, priority?)`` -> the child job (``parent_job_id`` =
  ``OVERSEER_JOB_ID``); an API error comes back as the tool's error text (e.g. ``MAX_DEPTH_EXCEEDED``).
- ``get_job(job_id)`` -> status, result, error, children.
- ``wait_job(job_id, timeout_s=600)`` -> the job once it is COMPLETED, FAILED or CANCELED (or the timeout).
- ``report_progress(message, percent?)`` -> a ``job.progress`` event on the caller's own job.

How agents get it (the same server for every worker Overseer starts, see :func:`mcp_server_spec`):

- Codex: ``-c mcp_servers.overseer.command=...`` overrides (:func:`codex_mcp_overrides`), or the same
  table in ``CODEX_HOME/config.toml`` (:func:`codex_mcp_toml`, what the job scheduler writes today). Codex
  passes only listed variables to MCP servers, hence ``env_vars``. Codex 0.169 defers MCP tools behind
  ``tool_search`` (namespace ``mcp__overseer``), and a server still starting is not found yet.
- Claude Code: ``--mcp-config <json>`` (:func:`claude_mcp_config`); the tools are
  ``mcp__overseer__<tool>`` once the server connected (``WaitForMcpServers`` waits for it). The server
  inherits Claude's environment.

This module imports the ``mcp`` package only in :func:`main`, so the spec helpers stay cheap to import.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from overseer.config import Settings

SERVER_NAME = "overseer"
PASSED_ENV = ("OVERSEER_URL", "OVERSEER_TOKEN", "OVERSEER_JOB_ID", "OVERSEER_WORKSPACE_ID")
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")


def mcp_server_spec(settings: Settings | None = None) -> dict[str, Any]:
    """How to start Overseer's MCP server: ``{"command", "args", "env_vars"}`` (stdio).

    ``command`` is this interpreter, so the server runs from the same install as the node.
    """
    del settings  # the same for every node today; kept so a setting can change it without touching callers
    return {"command": sys.executable, "args": ["-m", "overseer.jobs.mcp_server"], "env_vars": list(PASSED_ENV)}


def _toml(value: Any) -> str:
    return json.dumps(value)  # JSON strings and arrays of strings are valid TOML


def codex_mcp_overrides(spec: dict[str, Any]) -> list[str]:
    """The ``-c key=value`` values (put a ``-c`` before each) that give Codex the MCP server."""
    p = f"mcp_servers.{SERVER_NAME}"
    return [f"{p}.command={_toml(spec['command'])}", f"{p}.args={_toml(spec['args'])}",
            f"{p}.env_vars={_toml(spec['env_vars'])}"]


def codex_mcp_toml(spec: dict[str, Any]) -> str:
    """The same as a ``config.toml`` table."""
    return (f"[mcp_servers.{SERVER_NAME}]\ncommand = {_toml(spec['command'])}\nargs = {_toml(spec['args'])}\n"
            f"env_vars = {_toml(spec['env_vars'])}\n")


def claude_mcp_config(spec: dict[str, Any]) -> str:
    """The JSON for Claude Code's ``--mcp-config``."""
    return json.dumps({"mcpServers": {SERVER_NAME: {"type": "stdio", "command": spec["command"],
                                                    "args": spec["args"]}}})


class _Api:
    def __init__(self) -> None:
        import httpx

        url = os.environ.get("OVERSEER_URL", "http://127.0.0.1:8787").rstrip("/")
        token = os.environ.get("OVERSEER_TOKEN", "")
        self.http = httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self.http.request(method, path, **kw)
        body = resp.json() if resp.content else {}
        if resp.status_code >= 400:
            err = body.get("error", {}) if isinstance(body, dict) else {}
            raise RuntimeError(f"{resp.status_code} {err.get('code', 'ERROR')}: {err.get('message', body)}")
        return body


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "status", "depth", "parent_job_id", "prompt", "result", "error", "cancel_reason", "waiting",
            "worker_id", "thread_id")
    out = {k: job.get(k) for k in keys}
    if "children" in job:
        out["children"] = [{"id": c["id"], "status": c["status"]} for c in job["children"]]
    return out


def build_server() -> Any:
    """The MCP server with its four tools (imports ``mcp``)."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(SERVER_NAME, instructions="Spawn and follow Overseer sub-jobs of the current job.")
    api = _Api()

    @server.tool()
    async def spawn_job(prompt: str, agent_kind: str | None = None, depends_on: list[str] | None = None,
                        priority: int = 0) -> str:
        """Spawn a child job of the current job (depth + 1). Returns the child as JSON."""
        body: dict[str, Any] = {"prompt": prompt, "priority": priority, "depends_on": depends_on or []}
        if os.environ.get("OVERSEER_JOB_ID"):
            body["parent_job_id"] = os.environ["OVERSEER_JOB_ID"]
        if agent_kind:
            body["agent_kind"] = agent_kind
        return json.dumps(_summary(await api.call("POST", "/api/v1/jobs", json=body)))

    @server.tool()
    async def get_job(job_id: str) -> str:
        """A job's status, result, error and children, as JSON."""
        return json.dumps(_summary(await api.call("GET", f"/api/v1/jobs/{job_id}")))

    @server.tool()
    async def wait_job(job_id: str, timeout_s: float = 600.0) -> str:
        """Wait until the job is COMPLETED, FAILED or CANCELED (or ``timeout_s``); returns it as JSON."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(timeout_s, 3600.0))
        while True:
            job = await api.call("GET", f"/api/v1/jobs/{job_id}")
            if job.get("status") in TERMINAL or loop.time() >= deadline:
                return json.dumps({**_summary(job), "timed_out": job.get("status") not in TERMINAL})
            await asyncio.sleep(0.5)

    @server.tool()
    async def report_progress(message: str, percent: float | None = None) -> str:
        """Record a progress note on the current job."""
        job_id = os.environ.get("OVERSEER_JOB_ID")
        if not job_id:
            raise RuntimeError("OVERSEER_JOB_ID is not set: this agent is not running a job")
        await api.call("POST", f"/api/v1/jobs/{job_id}/progress", json={"message": message, "percent": percent})
        return json.dumps({"ok": True, "job_id": job_id})

    return server


def main() -> None:
    """Serve on stdio until the client closes it."""
    build_server().run("stdio")


__all__ = ["build_server", "claude_mcp_config", "codex_mcp_overrides", "codex_mcp_toml", "main", "mcp_server_spec"]


if __name__ == "__main__":
    main()

"""Settings, read from the environment with the ``OVERSEER_`` prefix (pydantic-settings).

Every interval and threshold the specs name is a setting, so tests run them in milliseconds.
Durations are seconds (floats). ``get_settings()`` is cached; tests build their own ``Settings``
and hand them to ``create_app``.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this package runs from (used only to find the project's pinned agent binaries)."""


def _default_data_dir() -> Path:
    return Path(os.environ.get("OVERSEER_DATA_DIR") or Path.home() / ".overseer")


def _pinned_bin(name: str) -> str:
    pinned = REPO_ROOT / ".tools" / "agents" / "node_modules" / ".bin" / name
    return str(pinned) if pinned.exists() else name


class Settings(BaseSettings):
    """All of Overseer's configuration. Environment: ``OVERSEER_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="OVERSEER_", env_nested_delimiter="__", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    """SQLAlchemy async URL. Default: ``sqlite+aiosqlite:///<data_dir>/overseer.db``."""
    jwt_secret: SecretStr | None = None
    """HS256 key. Unset in development: generated once into ``<data_dir>/jwt_secret`` (mode 0600)."""
    jwt_issuer: str = "overseer"
    host: str = "127.0.0.1"
    port: int = 8787
    public_url: str | None = None
    """The URL agents and browsers use to reach this server. Default ``http://<host>:<port>``."""
    sqlite_busy_timeout_ms: int = 5000
    gc_tuning: bool = True
    """``overseer serve`` / ``overseer demo``: freeze the start-up heap and raise the garbage collector's
    thresholds (``overseer.gctune``; the collector took 5.6 % of an ingest burst without it)."""
    sqlite_checkpoint_interval_s: float = 0.5
    """SQLite: checkpoint the WAL this often from a background connection (``db/checkpoint.py``), so that
    commits do not pay for it; 0 leaves it to SQLite (inside a commit every 1,000 pages)."""

    # Supervisors (TKT-001, TSK-003)
    supervisor_heartbeat_interval_s: float = 30.0
    supervisor_max_missed_heartbeats: int = 3
    """More than this many missed intervals marks a supervisor UNRESPONSIVE (TKT-001)."""
    agent_healthy_window_s: float = 90.0
    """An agent seen within this window counts as healthy (TKT-001 'Technical Notes')."""
    supervisor_max_hierarchy_levels: int = 5

    # Workers and agents (manager-ai-mvp-spec.md §1.1, issue 3)
    codex_bin: str = Field(default_factory=lambda: _pinned_bin("codex"))
    claude_bin: str = Field(default_factory=lambda: _pinned_bin("claude"))
    model_base_url: str | None = None
    """When set, every agent Overseer starts talks to this model endpoint (the scripted model)."""
    codex_model: str | None = None
    claude_model: str | None = None
    agent_request_timeout_s: float = 60.0
    terminate_grace_s: float = 5.0
    resume_prompt: str = "Continue where you left off."
    agent_mcp: bool = True
    """Configure Overseer's MCP server (spawn_job, get_job, wait_job, report_progress) into every agent."""
    worker_restart_max: int = 3
    """Restart intensity: at most this many automatic restarts of a crashed worker per window (0 = off)."""
    worker_restart_window_s: float = 300.0
    worker_restart_backoff_s: float = 0.5
    """Base of the jittered exponential backoff between restarts (seconds)."""

    # Live operations (live-operations-view-epic.md, issue 4)
    health_tick_s: float = 5.0
    stale_after_s: float = 60.0
    stall_after_s: float = 120.0
    disconnect_after_s: float = 300.0

    # Live event stream (GET /api/v1/ops/stream, issue 6 item 1; events/AGENTS.md)
    stream_keepalive_s: float = 15.0
    """Seconds between SSE comment pings on an idle stream (keeps proxies from closing it)."""
    stream_queue_max: int = 1000
    """Live events buffered per stream client; beyond it the client gets ``reconnect`` (slow_consumer)."""
    stream_max_lifetime_s: float = 3600.0
    """Seconds a stream stays open before ``reconnect`` (max_lifetime); the client resumes by Last-Event-ID."""

    # Notifications (CM-011)
    webhook_max_attempts: int = 5
    webhook_backoff_s: float = 1.0

    # Supervisor chat (issue 6 item 5; ops/AGENTS.md "chat")
    planner_agent: Literal["codex", "claude_code", "none"] = "codex"
    """The agent that turns free chat text into an overseer.dispatch.v1 contract ("none": commands only)."""
    planner_model: str | None = None
    """The planner's model (default: codex_model / claude_model, like workers)."""

    # Jobs (manager-ai-mvp-spec.md §1.2)
    max_job_depth: int = 5
    default_depth_quota: int = 4

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.env == "production" and self.jwt_secret is None:
            raise ValueError("OVERSEER_JWT_SECRET is required when OVERSEER_ENV=production")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'overseer.db'}"

    @property
    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def jwt_key(self) -> str:
        """Return the HS256 signing key, generating and persisting one in development.

        The generated key is written to ``<data_dir>/jwt_secret`` with mode 0600 and reused after.
        """
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / "jwt_secret"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()

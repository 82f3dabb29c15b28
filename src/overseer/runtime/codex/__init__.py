"""Codex adapter: :class:`CodexSession` drives ``codex app-server`` (JSON-RPC v2 over stdio)."""

from overseer.runtime.codex.adapter import ACCESS_MODES, CodexSession, check_version, codex_overrides

__all__ = ["ACCESS_MODES", "CodexSession", "check_version", "codex_overrides"]

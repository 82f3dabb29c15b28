"""Claude Code adapter: :class:`ClaudeSession` speaks ``claude -p`` stream-json over stdio."""

from overseer.runtime.claude.adapter import ClaudeSession

__all__ = ["ClaudeSession"]

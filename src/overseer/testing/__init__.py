"""Test support: a scripted model server the real agent binaries can talk to, and minimal clients.

See :mod:`overseer.testing.scripted_model` for the scenario language and ``AGENTS.md`` in this
directory for what the real Codex / Claude Code binaries send and expect.
"""

from overseer.testing.scripted_model import RequestRecord, ScriptedModelServer, main

__all__ = ["RequestRecord", "ScriptedModelServer", "main"]

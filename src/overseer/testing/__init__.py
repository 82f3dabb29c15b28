"""Test support: a scripted model server the real agent binaries can talk to, and minimal clients.

See :mod:`overseer.testing.scripted_model` for the scenario language and ``AGENTS.md`` in this
directory for what the real Codex / Claude Code binaries send and expect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from overseer.testing.scripted_model import RequestRecord, ScriptedModelServer, main

__all__ = ["RequestRecord", "ScriptedModelServer", "main"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m overseer.testing.scripted_model` does not import the module twice.
    if name in __all__:
        from overseer.testing import scripted_model

        return getattr(scripted_model, name)
    raise AttributeError(name)

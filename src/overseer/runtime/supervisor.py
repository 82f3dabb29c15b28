"""The runtime root: owns every background loop of one Overseer node.

Started and stopped by the app's lifespan. Sub-systems register here as they are built: the
supervisor heartbeat agents (TSK-003) and the worker manager (agent processes).
"""

from __future__ import annotations

import logging
from typing import Any

from overseer.clock import Clock
from overseer.config import Settings
from overseer.db.engine import Database

log = logging.getLogger(__name__)


class Runtime:
    """Holds the node's sub-systems; ``start()``/``stop()`` run them in order / reverse order."""

    def __init__(self, *, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.components: dict[str, Any] = {}

    def add(self, name: str, component: Any) -> None:
        self.components[name] = component

    async def start(self) -> None:
        for name, comp in self.components.items():
            log.info("starting %s", name)
            await comp.start()

    async def stop(self) -> None:
        for name, comp in reversed(list(self.components.items())):
            try:
                await comp.stop()
            except Exception:
                log.exception("stopping %s failed", name)

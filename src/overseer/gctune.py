"""Garbage-collector settings for the server process (``overseer serve``, ``overseer demo``).

CPython's cyclic collector runs a young-generation pass every 700 net container allocations, and now
and then a full pass over every tracked object, the whole start-up heap included (modules, classes,
SQLAlchemy's mappers, FastAPI's routes and schemas). The agent-event ingest allocates a few dicts per
event, so by default the collector took **5.6 %** of an ingest burst: 130-135 ms of 2.3-2.4 s in three
20,000-event runs of ``benchmarks/pipeline.py`` (268 young, 24 middle and 1 full collection; a full one
~70 ms). With :func:`tune_for_server`: 0.4-0.5 % (4 young collections).

What it does (https://docs.python.org/3/library/gc.html):

* ``gc.collect()`` then ``gc.freeze()``: what is alive once the process has started moves to the
  permanent generation, which no later collection scans again. Call it after start-up, before load.
* ``gc.set_threshold(10_000, 20, 20)``: a young collection every 10,000 net allocations instead of
  700, a middle one every 20 young ones, a full one every 20 middle ones (CPython also waits until the
  objects awaiting a full pass are 25 % of the long-lived ones). Cyclic garbage lives a little longer;
  reference counting, which frees almost everything, is unchanged.

Off with ``OVERSEER_GC_TUNING=false`` (:attr:`overseer.config.Settings.gc_tuning`). Not applied by
``create_app``: a test process builds hundreds of apps, and freezing each one's leftovers would keep
them forever.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overseer.config import Settings

THRESHOLDS = (10_000, 20, 20)
"""``gc.set_threshold`` arguments for the server (CPython's default: 700, 10, 10)."""


def tune_for_server() -> None:
    """Collect, freeze what survives, and raise the collection thresholds to :data:`THRESHOLDS`.
    Process-wide; idempotent (a second call freezes what was allocated since)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def apply(settings: Settings) -> bool:
    """:func:`tune_for_server` unless ``settings.gc_tuning`` is off; returns whether it ran. For the
    entry points (``overseer serve``, ``overseer demo``), once their app is built."""
    if settings.gc_tuning:
        tune_for_server()
    return settings.gc_tuning

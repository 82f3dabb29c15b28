"""Job scheduler throughput and reaction time (issue 5 item 4), with the real policy and allocation
transaction and a no-op turn starter.

Setup (not measured): a fresh migrated database, ``--workspaces`` workspaces (10) and ``--jobs`` PENDING jobs
(10,000) spread evenly over depths 0..4, each job at depth d > 0 a child of a random depth d - 1 job of its
workspace, random priorities; real quotas: the default ``default_depth_quota`` (4) per workspace and depth
and a node-wide cap of ``--global-cap`` (30) workers per depth.

Measured:

1. Throughput: a :class:`~overseer.runtime.jobs.JobScheduler` (the real loop: plan, then one allocate +
   PENDING -> RUNNING transaction per job) whose starter ends the job's turn at once (it queues the turn
   ending the way a ``turn.completed`` from an agent does; the next pass releases the allocation and
   completes the job, or lets it wait for its children and completes it with them). Reported: jobs started per second until all ``--jobs`` started, and the median
   scheduling pass.
2. Reaction time: one workspace, quota 1 at depth 0, one job RUNNING, one PENDING: the time from the
   running job's turn ending (its slot freed, the scheduler woken) to the starter being called for the
   next job. Median and p90 over ``--samples`` (50).

    .venv/bin/python benchmarks/scheduler.py [--jobs 10000] [--workspaces 10] [--pg/--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from sqlalchemy import func, insert, select

from overseer.clock import SystemClock, utcnow
from overseer.config import Settings
from overseer.db.engine import Database, make_engine
from overseer.events.bus import EventBus
from overseer.jobs.models import Job, JobStatus, ResourceQuota
from overseer.ops.pipeline import OpsPipeline
from overseer.runtime.jobs import JobScheduler
from overseer.workspaces.models import Workspace

DEPTHS = 5


async def seed(db: Database, *, n_jobs: int, n_ws: int, global_cap: int) -> list[uuid.UUID]:
    rng = random.Random(5)
    ws_ids = [uuid.uuid4() for _ in range(n_ws)]
    now = utcnow()
    async with db.session() as s:
        await s.execute(insert(Workspace), [{"id": w, "name": f"bench-{i}", "root_path": f"/tmp/bench-{i}",
                                             "settings": {}, "created_at": now} for i, w in enumerate(ws_ids)])
        await s.execute(insert(ResourceQuota), [{"workspace_id": None, "depth": d, "max_workers": global_cap,
                                                 "updated_at": now} for d in range(DEPTHS)])
    by_level: dict[tuple[uuid.UUID, int], list[uuid.UUID]] = {}
    rows = []
    for i in range(n_jobs):
        depth = i * DEPTHS // n_jobs
        ws = ws_ids[i % n_ws]
        parents = by_level.get((ws, depth - 1), [])
        job_id = uuid.uuid4()
        by_level.setdefault((ws, depth), []).append(job_id)
        rows.append({"id": job_id, "workspace_id": ws, "parent_job_id": rng.choice(parents) if parents else None,
                     "depth": depth if parents or depth == 0 else 0, "status": JobStatus.PENDING.value,
                     "prompt": f"job {i}", "priority": rng.randint(-2, 2), "agent_kind": "codex",
                     "access_mode": "default", "pinned_worker": False, "created_at": now, "updated_at": now})
    async with db.session() as s:
        for k in range(0, len(rows), 2000):
            await s.execute(insert(Job), rows[k:k + 2000])
    return ws_ids


def make_db(url: str) -> Database:
    db = Database(make_engine(url), EventBus())
    OpsPipeline(db).install()
    return db


async def throughput(backend: str, args: argparse.Namespace) -> None:
    async with C.bench_database(backend) as url:
        db = make_db(url)
        settings = Settings(database_url=url, jwt_secret="x" * 40)  # type: ignore[arg-type]
        try:
            await seed(db, n_jobs=args.jobs, n_ws=args.workspaces, global_cap=args.global_cap)
            started: list[float] = []
            done = asyncio.Event()
            scheduler: JobScheduler

            async def starter(job_id: uuid.UUID) -> None:
                started.append(time.perf_counter())
                scheduler.notify_turn_ended(job_id, status="completed", final_message="noop")
                if len(started) >= args.jobs:
                    done.set()

            scheduler = JobScheduler(db=db, settings=settings, clock=SystemClock(), workers=None, starter=starter,
                                     poll_s=1.0)
            passes: list[float] = []
            original = scheduler.run_once

            async def timed() -> object:
                stats = await original()
                passes.append(stats.seconds)
                return stats

            scheduler.run_once = timed  # type: ignore[method-assign]
            t0 = time.perf_counter()
            await scheduler.start()
            await asyncio.wait_for(done.wait(), timeout=args.timeout)
            elapsed = time.perf_counter() - t0
            await scheduler.stop()
            async with db.read_session() as s:
                by_status = dict((await s.execute(select(Job.status, func.count()).group_by(Job.status))).all())
            print(f"{backend}: started {len(started)} jobs in {elapsed:.2f} s = {len(started) / elapsed:.0f} jobs/s; "
                  f"{len(passes)} passes, median pass {C.median(passes) * 1000:.1f} ms; final statuses {by_status}")
        finally:
            await db.dispose()


async def reaction(backend: str, args: argparse.Namespace) -> None:
    async with C.bench_database(backend) as url:
        db = make_db(url)
        settings = Settings(database_url=url, jwt_secret="x" * 40)  # type: ignore[arg-type]
        try:
            ws = uuid.uuid4()
            now = utcnow()
            async with db.session() as s:
                await s.execute(insert(Workspace), [{"id": ws, "name": "react", "root_path": "/tmp/react",
                                                     "settings": {}, "created_at": now}])
                await s.execute(insert(ResourceQuota), [{"workspace_id": ws, "depth": 0, "max_workers": 1,
                                                         "updated_at": now}])
                await s.execute(insert(Job), [{"id": uuid.uuid4(), "workspace_id": ws, "depth": 0, "status": "PENDING",
                                               "prompt": f"j{i}", "priority": 0, "agent_kind": "codex",
                                               "access_mode": "default", "pinned_worker": False, "created_at": now,
                                               "updated_at": now} for i in range(args.samples + 1)])
            calls: asyncio.Queue[tuple[uuid.UUID, float]] = asyncio.Queue()

            async def starter(job_id: uuid.UUID) -> None:
                await calls.put((job_id, time.perf_counter()))

            scheduler = JobScheduler(db=db, settings=settings, clock=SystemClock(), workers=None, starter=starter,
                                     poll_s=5.0)
            await scheduler.start()
            running, _ = await calls.get()
            gaps: list[float] = []
            for _ in range(args.samples):
                await asyncio.sleep(0.02)  # let the scheduler go idle
                t0 = time.perf_counter()
                await scheduler.finish_turn(running, status="completed", final_message="noop")
                running, t1 = await asyncio.wait_for(calls.get(), 10)
                gaps.append(t1 - t0)
            await scheduler.stop()
            print(f"{backend}: slot freed -> next job started: median {C.median(gaps) * 1000:.1f} ms, "
                  f"p90 {C.percentile(gaps, 90) * 1000:.1f} ms over {len(gaps)} samples")
        finally:
            await db.dispose()


async def main(args: argparse.Namespace) -> None:
    C.header("job scheduler", {"jobs": args.jobs, "workspaces": args.workspaces, "depths": DEPTHS,
                               "quota per workspace and depth": Settings(jwt_secret="x" * 40).default_depth_quota,  # type: ignore[arg-type]
                               "node-wide cap per depth": args.global_cap, "starter": "no-op (turn ends at once)"})
    for backend in C.backends(args.pg):
        await throughput(backend, args)
        await reaction(backend, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workspaces", type=int, default=10)
    parser.add_argument("--global-cap", type=int, default=30)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--pg", action=argparse.BooleanOptionalAction, default=bool(C.pg_url()))
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    ns = parser.parse_args()
    C.run(lambda: main(ns), loop=ns.loop)

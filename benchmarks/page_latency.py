"""Event -> row on the live page, measured in the browser (Debian chromium via Playwright).

Setup: a fresh temp SQLite database and a real uvicorn server in a subprocess (``_launch_server.py``:
``create_app(start_runtime=False)``, one workspace, one worker row, and the benchmark's event writer
inside the server process, so events are published on the server's bus exactly as agent events are;
see that file for why). Chromium signs in with a one-time login link (admin session, the operator's
view) and waits for the stream state ``live``.

Measured: for each rate in ``--rates``, ``--events`` agent-style events (turn.started,
item.started, item.completed, ..., turn.completed: every one a feed row, all in the page's
KNOWN_EVENTS) are appended at that rate, one transaction per event when the writer keeps up. Each
event's ``created_at`` is taken just before its transaction commits. In the page, instrumentation
added with ``add_init_script`` (not page logic) records, with ``performance.timeOrigin +
performance.now()`` (the same machine clock as the server):

- ``stream``: when the page's ``EventSource`` delivers the event (a wrapper around ``EventSource``
  records each named event's ``lastEventId`` before the page's own listener runs);
- ``row``: when ``li.fi[data-event-id=<id>]`` is first inserted into the DOM (``MutationObserver``);
- ``paint``: the next ``requestAnimationFrame`` after that insertion (when it can be on screen).

The page does not render a row from the stream event itself: the event schedules a re-fetch of
snapshot + feed + workers (coalesced, at most every 250 ms), and the feed rows come from
``GET /ops/feed``. So row latency = stream delivery + wait for the coalescing window + three GETs +
render. Printed: p50/p99/max of stream, row and paint latency, rows never shown, the refresh count
(``GET /ops/feed`` requests seen by the page), and the server's CPU.

    .venv/bin/python benchmarks/page_latency.py [--rates 20,100] [--events 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from stream_fanout import cpu_seconds, read_json, rss_mb, runq_wait_s, send

from overseer.config import Settings
from overseer.web.auth import create_login_link

HERE = Path(__file__).resolve().parent
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
INSTRUMENT = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__stream = {};
  window.__row = {};
  window.__paint = {};
  window.__feedGets = 0;
  const Orig = window.EventSource;
  window.EventSource = class extends Orig {
    addEventListener(type, fn, opts) {
      if (type !== 'ready' && type !== 'reconnect') {
        super.addEventListener(type, (e) => { if (!(e.lastEventId in window.__stream)) window.__stream[e.lastEventId] = now(); });
      }
      return super.addEventListener(type, fn, opts);
    }
  };
  const origFetch = window.fetch;
  window.fetch = function (input, init) {
    if (String(input && input.url || input).includes('/ops/feed')) window.__feedGets += 1;
    return origFetch.apply(this, arguments);
  };
  const seen = (node) => {
    const t = now();
    const fresh = [];
    const visit = (el) => {
      if (el.nodeType !== 1) return;
      if (el.matches('li.fi[data-event-id]')) {
        const id = el.dataset.eventId;
        if (!(id in window.__row)) { window.__row[id] = t; fresh.push(id); }
      }
      for (const c of el.querySelectorAll('li.fi[data-event-id]')) visit(c);
    };
    visit(node);
    if (fresh.length) requestAnimationFrame(() => { const p = now(); for (const id of fresh) window.__paint[id] = p; });
  };
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) seen(n);
  }).observe(document, { childList: true, subtree: true });
})();
"""


def pct(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return (f"p50 {C.percentile(xs, 50):.0f} ms, p99 {C.percentile(xs, 99):.0f} ms, max {max(xs):.0f} ms "
            f"(n={len(xs)})")


async def run_rate(page: Any, server: Any, rate: float, n: int, server_pid: int, settle_s: float) -> None:
    print(f"\n## {n} events at {rate:g}/s")
    print(f"# load before: {C.uptime()}")
    await page.evaluate("() => { window.__stream = {}; window.__row = {}; window.__paint = {}; window.__feedGets = 0; }")
    cpu0, wait0, t0 = cpu_seconds(server_pid), runq_wait_s(server_pid), time.monotonic()
    await send(server, {"cmd": "write", "rate": rate, "count": n, "times": True})
    done = await read_json(server, "done", n / rate * 5 + 60)
    cpu1, wait1, t1 = cpu_seconds(server_pid), runq_wait_s(server_pid), time.monotonic()
    created = {int(i): t for i, t in done["times"]}
    last = max(created)
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:  # the last rows may still be on their way
        if await page.evaluate(f"() => '{last}' in window.__row"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    got = await page.evaluate("() => ({stream: window.__stream, row: window.__row, paint: window.__paint, "
                              "gets: window.__feedGets})")
    lat: dict[str, list[float]] = {"stream": [], "row": [], "paint": []}
    for kind in lat:
        for sid, t_ms in got[kind].items():
            eid = int(sid)
            if eid in created:
                lat[kind].append(t_ms - created[eid] * 1000)
    missing = len(created) - len(lat["row"])
    print(f"writer: {done['written']} events in {done['seconds']:.1f} s = {done['written'] / done['seconds']:.1f}/s, "
          f"{done['transactions']} transactions (max batch {done['max_batch']}), commit p50/p99 "
          f"{done['commit_ms_p50']:.1f} / {done['commit_ms_p99']:.1f} ms; server event-loop lag p50/p99 "
          f"{done['loop_lag_ms_p50']:.1f} / {done['loop_lag_ms_p99']:.1f} ms")
    print(f"created_at -> EventSource event in the page: {pct(lat['stream'])}")
    print(f"created_at -> feed row in the DOM:           {pct(lat['row'])}")
    print(f"created_at -> next animation frame:          {pct(lat['paint'])}")
    print(f"rows never shown: {missing} of {len(created)}; stream events missed: {len(created) - len(lat['stream'])}; "
          f"page GET /ops/feed requests: {got['gets']} ({got['gets'] / done['seconds']:.1f}/s)")
    print(f"server while writing: CPU {(cpu1 - cpu0) / (t1 - t0) * 100:.0f} %, event-loop thread waiting for a CPU "
          f"{(wait1 - wait0) / (t1 - t0) * 100:.0f} % of wall time, RSS {rss_mb(server_pid):.0f} MB")
    print(f"# load after: {C.uptime()}")


async def main(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed: run scripts/install-browser.sh (Debian's chromium package)")
    rates = [float(x) for x in args.rates.split(",")]
    C.header("Live page latency: agent-style event -> feed row, in Chromium", {
        "rates": f"{args.rates} events/s", "events per rate": args.events, "browser": chromium,
        "viewport": "1280x800, headless", "session": "admin (all workspaces) via /auth/login?code=",
        "server": "uvicorn subprocess (_launch_server.py), create_app(start_runtime=False), writer in-process",
        "loop": args.loop, "backend": "sqlite"})
    with tempfile.TemporaryDirectory(prefix="overseer-page-") as tmp:
        async with C.bench_database("sqlite") as db_url:
            server = await asyncio.create_subprocess_exec(
                sys.executable, str(HERE / "_launch_server.py"), "--database-url", db_url, "--jwt-key", C.JWT_KEY,
                "--data-dir", tmp, "--loop", args.loop,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26)
            try:
                hello = await read_json(server, "ready", 60)
                url = f"http://127.0.0.1:{hello['port']}"
                settings = Settings(jwt_secret=C.JWT_KEY, data_dir=Path(tmp), database_url=db_url)  # type: ignore[arg-type]
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
                    try:
                        ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
                        await ctx.add_init_script(INSTRUMENT)
                        page = await ctx.new_page()
                        errors: list[str] = []
                        page.on("pageerror", lambda exc: errors.append(str(exc)))
                        link = create_login_link(settings, C.JWT_KEY, subject="bench", scopes=["admin"],
                                                 workspace_ids=["*"], base_url=url)
                        await page.goto(link)
                        await page.wait_for_url(f"{url}/")
                        await page.wait_for_selector("#stream-state[data-state='live']", timeout=30_000)
                        await page.wait_for_selector("#feed-list li.fi[data-event-id]", timeout=30_000)
                        await asyncio.sleep(1.0)
                        for rate in rates:
                            await run_rate(page, server, rate, args.events, hello["pid"], args.settle_s)
                        state = await page.get_attribute("#stream-state", "data-state")
                        print(f"\nstream state at the end: {state}; page errors: {errors or 'none'}")
                    finally:
                        await browser.close()
            finally:
                if server.returncode is None:
                    await send(server, {"cmd": "quit"})
                    try:
                        await asyncio.wait_for(server.wait(), 40)
                    except TimeoutError:
                        server.kill()
                        await server.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="20,100", help="comma-separated events/s, one run each (20,100)")
    ap.add_argument("--events", type=int, default=1000, help="events per rate (1000)")
    ap.add_argument("--settle-s", type=float, default=10.0, help="max seconds to wait for the last row (10)")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    a = ap.parse_args()
    C.run(lambda: main(a), loop="asyncio")

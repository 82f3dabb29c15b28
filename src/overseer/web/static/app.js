/* Overseer live page: a pure client of the HTTP API (see web/AGENTS.md).
 *
 * Data: GET /api/v1/ops/snapshot (the first screen: every workspace with its counts, the most urgent threads,
 * capped lists), /ops/threads?workspace_id= (an expanded workspace), /ops/feed (activity), /workers (every
 * worker, liveness), /supervisors (+ /{id}/health, /{id}/status). Live: EventSource on /api/v1/ops/stream; every
 * relevant event schedules a re-fetch (at most 4 per second), so the page always shows server truth.
 * Actions: the same POSTs a script would make. All agent text is escaped before it reaches the DOM.
 * Chat: GET/POST /api/v1/chat/messages; a `chat.message` stream event fetches the messages after the last one.
 */
'use strict';
(() => {
  const API = '/api/v1';
  const NOISE = new Set(['message.delta', 'command.output_delta', 'status', 'token_usage', 'protocol.malformed']);
  const STREAM_TYPES = ['turn.*', 'item.*', 'approval.*', 'question.*', 'worker.*', 'agent.*', 'thread.*', 'plan.*',
    'health.*', 'signal.*', 'dispatch.*', 'workspace.*', 'supervisor.*', 'team.*', 'job.*', 'resource.*',
    'chat.*'].join(',');
  // EventSource only delivers named events to listeners registered by name.
  const KNOWN_EVENTS = ['turn.started', 'turn.completed', 'item.started', 'item.completed', 'approval.requested',
    'approval.decided', 'approval.expired', 'approval.resolved', 'approval.timed_out', 'question.requested',
    'question.answered', 'question.expired', 'worker.created', 'worker.state_changed', 'agent.ready',
    'agent.exited', 'thread.started', 'thread.lost', 'worker.restart_exhausted', 'plan.updated', 'health.stalled', 'health.workspace_stale',
    'health.disconnected', 'signal.acked', 'dispatch.executed', 'workspace.created', 'supervisor.created',
    'supervisor.updated', 'supervisor.deleted', 'supervisor.started', 'supervisor.paused', 'supervisor.resumed',
    'supervisor.stopped', 'supervisor.failed', 'supervisor.recovered', 'supervisor.unresponsive', 'team.created',
    'team.updated', 'team.deleted', 'team.member_added', 'team.member_removed', 'job.submitted',
    'job.state_changed', 'job.waiting', 'job.progress', 'resource.allocated', 'resource.released',
    'resource.quotas_changed', 'chat.message'];
  const MIN_REFRESH_MS = 250; // at most 4 snapshot fetches per second
  const FEED_PAGE = 50;
  const FEED_KEEP = 1000;
  const FEED_RENDER = 300;
  const THREADS_SHOWN = 6;
  const WORKERS_SHOWN = 200;
  const ACTIVE_THREAD = new Set(['running', 'waiting_input', 'stalled', 'failed']);
  const THREAD_ORDER = { waiting_input: 0, failed: 1, stalled: 2, running: 3, idle: 4, completed: 5 };
  const THREAD_LABEL = { waiting_input: 'waiting for you', running: 'running', failed: 'failed', stalled: 'stalled',
    idle: 'idle', completed: 'completed' };
  const KIND_LABEL = { codex: 'Codex', claude_code: 'Claude Code' };
  const SIGNAL_LABEL = { needs_approval: 'approval', needs_input: 'question', failed: 'failed',
    disconnected: 'disconnected', stalled: 'stalled', completed: 'completed' };
  const LIVE_WORKER = new Set(['IDLE', 'RUNNING', 'PAUSED', 'RETRYING']);
  const MUTE_KEY = 'overseer.muted.v1';

  const $ = (sel, root = document) => root.querySelector(sel);
  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  /** Escape any value for HTML text or a quoted attribute. Every piece of server data goes through it. */
  const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
  const clip = (s, n) => { s = String(s ?? ''); return s.length > n ? `${s.slice(0, n - 1)}…` : s; };
  const short = (id) => String(id ?? '').slice(0, 8);
  /** Thread ids: Codex's are UUIDv7 (time first), so threads started together share a prefix; use the tail. */
  const tshort = (id) => String(id ?? '').slice(-8);

  const state = {
    snap: null,
    wsById: new Map(),
    threadWs: new Map(),
    wsThreads: new Map(), // workspace id -> every thread (GET /ops/threads), while the workspace is expanded
    workersById: new Map(),
    apiWorkers: null,
    supervisors: null,
    feed: { items: new Map(), more: false, needs: false, ws: '', cap: FEED_RENDER, loaded: false, gen: 0 },
    showQuiet: false,
    openWs: new Set(),
    showEnded: false,
    showUpdates: false,
    turnBox: null,
    busy: new Set(),
    errors: new Map(),
    notes: new Map(),
    armed: null,
    qSel: new Map(),
    dispatchSel: new Set(),
    dispatchFilter: '',
    muted: loadMuted(),
    seenAlerts: new Set(),
    alertsReady: false,
    signedOut: false,
  };

  // ------------------------------------------------------------------------------------------ API

  async function api(method, path, body) {
    const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = null;
    if (r.status !== 204) { try { data = await r.json(); } catch (_) { data = null; } }
    if (!r.ok) {
      const e = new Error((data && data.error && data.error.message) || `${r.status} ${r.statusText}`);
      e.status = r.status;
      e.code = data && data.error && data.error.code;
      e.details = (data && data.error && data.error.details) || {};
      if (r.status === 401) signedOut();
      throw e;
    }
    return data;
  }

  function signedOut() {
    if (state.signedOut) return;
    state.signedOut = true;
    if (stream.es) stream.es.close();
    stream.es = null;
    clearTimeout(stream.retryTimer);
    setStream('signed-out');
    const b = $('#banner');
    b.innerHTML = 'Your session has ended. Sign in again with the link printed by <code>overseer open</code>. '
      + '<a href="/">Reload</a>';
    b.hidden = false;
  }

  // ------------------------------------------------------------------------------------------ helpers

  function rel(iso) {
    if (!iso) return '—';
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (!Number.isFinite(s)) return '—';
    if (s < 5) return 'just now';
    if (s < 60) return `${Math.floor(s)}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }
  const timeEl = (iso) => (iso
    ? `<time datetime="${esc(iso)}" data-rel title="${esc(new Date(iso).toLocaleString())}">${esc(rel(iso))}</time>`
    : '<span class="muted">—</span>');
  const clock = (iso) => {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  };
  const wsName = (id) => (state.wsById.get(id) || {}).name || short(id);
  const threadLink = (tid, label) => (tid
    ? `<a class="tlink" href="#thread-${esc(tid)}" data-thread="${esc(tid)}">${esc(label || `thread ${tshort(tid)}`)}</a>`
    : '');
  const wsLink = (id) => `<a class="wslink" href="#ws-${esc(id)}">${esc(wsName(id))}</a>`;
  const busyAttr = (key) => (state.busy.has(key) ? ' disabled aria-busy="true"' : '');
  const errFor = (key) => (state.errors.has(key)
    ? `<span class="inline-err" role="alert">${esc(state.errors.get(key))}</span>`
    : (state.notes.has(key) ? `<span class="muted small-text">${esc(state.notes.get(key))}</span>` : ''));

  function diffHtml(diff) {
    return String(diff).split('\n').slice(0, 400).map((line) => {
      const cls = line.startsWith('+') && !line.startsWith('+++') ? 'diff-add'
        : (line.startsWith('-') && !line.startsWith('---') ? 'diff-del' : '');
      return cls ? `<span class="${cls}">${esc(line)}</span>` : esc(line);
    }).join('\n');
  }

  /** Replace a section's HTML only when it changed, keeping typed text and keyboard focus. */
  function patch(el, html) {
    if (!el || el._html === html) return;
    const kept = new Map();
    el.querySelectorAll('[data-keep]').forEach((i) => kept.set(i.dataset.keep, i.value));
    const ae = document.activeElement;
    let fkey = null;
    let keepKey = null;
    let sel = null;
    if (ae && el.contains(ae)) {
      keepKey = ae.dataset.keep || null;
      fkey = ae.dataset.fkey || null;
      try { sel = [ae.selectionStart, ae.selectionEnd]; } catch (_) { sel = null; }
    }
    el.innerHTML = html;
    el._html = html;
    kept.forEach((v, k) => {
      const i = el.querySelector(`[data-keep="${CSS.escape(k)}"]`);
      if (i) i.value = v;
    });
    const target = (keepKey && el.querySelector(`[data-keep="${CSS.escape(keepKey)}"]`))
      || (fkey && el.querySelector(`[data-fkey="${CSS.escape(fkey)}"]`));
    if (target) {
      target.focus({ preventScroll: true });
      if (sel && sel[0] != null) { try { target.setSelectionRange(sel[0], sel[1]); } catch (_) { /* not a text field */ } }
    }
  }

  // ------------------------------------------------------------------------------------------ mute

  function loadMuted() {
    try { return new Set(JSON.parse(localStorage.getItem(MUTE_KEY) || '[]')); } catch (_) { return new Set(); }
  }
  function toggleMute(wsId) {
    if (state.muted.has(wsId)) state.muted.delete(wsId); else state.muted.add(wsId);
    try { localStorage.setItem(MUTE_KEY, JSON.stringify([...state.muted])); } catch (_) { /* private mode */ }
    renderWorkspaces();
    document.querySelectorAll(`.toast[data-ws="${CSS.escape(wsId)}"]`).forEach((t) => t.remove());
  }

  // ------------------------------------------------------------------------------------------ loading

  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;
  let lastRefreshAt = 0;

  /** Re-fetch snapshot, feed head and workers soon (coalesced; never more often than every 250 ms). */
  function scheduleRefresh(delay = 60) {
    if (state.signedOut) return;
    if (refreshing) { refreshAgain = true; return; }
    if (refreshTimer) return;
    const wait = Math.max(delay, lastRefreshAt + MIN_REFRESH_MS - Date.now(), 0);
    refreshTimer = setTimeout(doRefresh, wait);
  }

  async function doRefresh() {
    refreshTimer = null;
    refreshing = true;
    lastRefreshAt = Date.now();
    try {
      const [snap] = await Promise.allSettled([loadSnapshot(), loadFeedHead(), loadWorkers()]);
      if (snap.status === 'rejected' && snap.reason && snap.reason.status === 403 && !state.signedOut) {
        const b = $('#banner');
        b.textContent = `This session cannot read the live picture: ${snap.reason.message}. Ask for a link with the supervisor:read scope.`;
        b.hidden = false;
      }
    } finally {
      refreshing = false;
      if (refreshAgain) { refreshAgain = false; scheduleRefresh(); }
    }
  }

  async function loadSnapshot() {
    const snap = await api('GET', `${API}/ops/snapshot`);
    state.snap = snap;
    state.wsById = new Map(snap.workspaces.map((w) => [w.id, w]));
    indexThreads();
    state.workersById = new Map(snap.workers.map((w) => [w.id, w]));
    for (const id of [...state.dispatchSel]) if (!state.wsById.has(id)) state.dispatchSel.delete(id);
    for (const id of [...state.wsThreads.keys()]) {
      if (!state.wsById.has(id) || !state.openWs.has(id)) state.wsThreads.delete(id);
      else loadWsThreads(id); // an expanded workspace re-reads its threads with the snapshot
    }
    renderAll();
    updateAlerts(snap);
  }

  function indexThreads() {
    state.threadWs = new Map();
    if (!state.snap) return;
    for (const w of state.snap.workspaces) for (const t of w.threads) state.threadWs.set(t.thread_id, w.id);
    for (const [ws, items] of state.wsThreads) for (const t of items) state.threadWs.set(t.thread_id, ws);
  }

  /** The snapshot lists the fleet's most urgent threads; an expanded workspace shows all of its own. */
  async function loadWsThreads(ws) {
    try {
      const page = await api('GET', `${API}/ops/threads?workspace_id=${encodeURIComponent(ws)}&limit=500`);
      if (!state.openWs.has(ws)) return;
      state.wsThreads.set(ws, page.items);
      indexThreads();
      renderWorkspaces();
    } catch (e) {
      if (e.status !== 401) state.wsThreads.delete(ws);
    }
  }

  function openWorkspace(ws) {
    state.openWs.add(ws);
    const w = state.wsById.get(ws);
    if (w && (w.threads_total ?? 0) > w.threads.length) return loadWsThreads(ws);
    return Promise.resolve();
  }

  async function loadWorkers() {
    try {
      const data = await api('GET', `${API}/workers`);
      state.apiWorkers = new Map(data.workers.map((w) => [w.id, w]));
    } catch (e) {
      if (e.status !== 401) state.apiWorkers = null;
    }
    renderWorkers();
  }

  let supTimer = null;
  function scheduleSupervisors(delay = 500) {
    if (supTimer) return;
    supTimer = setTimeout(() => { supTimer = null; loadSupervisors(); }, delay);
  }

  async function loadSupervisors() {
    try {
      const page = await api('GET', `${API}/supervisors?limit=50`);
      const items = Array.isArray(page) ? page : (page.items || []);
      const detail = await Promise.all(items.slice(0, 50).map(async (s) => {
        const [health, status] = await Promise.allSettled([
          api('GET', `${API}/supervisors/${encodeURIComponent(s.id)}/health`),
          api('GET', `${API}/supervisors/${encodeURIComponent(s.id)}/status`),
        ]);
        return { sup: s, health: health.status === 'fulfilled' ? health.value : null,
          teams: status.status === 'fulfilled' ? status.value : null };
      }));
      state.supervisors = { items: detail, total: page.total ?? items.length };
    } catch (e) {
      state.supervisors = { error: e.status === 404 ? 'Supervisors are not available on this server.' : e.message };
    }
    renderSupervisors();
  }

  // ------------------------------------------------------------------------------------------ feed

  function feedParams(extra) {
    const f = state.feed;
    const q = new URLSearchParams({ limit: String(f.needs ? 200 : FEED_PAGE) });
    if (f.needs) q.set('needs_input', 'true');
    if (f.ws) q.set('workspace_id', f.ws);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, String(v));
    return q;
  }

  /** Merge the newest page(s) of the feed into what is loaded (no duplicates: items are keyed by id). */
  async function loadFeedHead() {
    const f = state.feed;
    const gen = f.gen;
    let page = await api('GET', `${API}/ops/feed?${feedParams()}`);
    if (gen !== f.gen) return;
    if (f.needs) { // waiting requests are current state, not history: replace
      f.items = new Map(page.items.map((i) => [i.id, i]));
      f.more = page.next_before != null;
      f.loaded = true;
      renderFeed();
      return;
    }
    const known = f.items.size ? Math.max(...f.items.keys()) : 0;
    const got = [...page.items];
    let guard = 0;
    while (f.loaded && page.next_before != null && got.length && got[got.length - 1].id > known && guard < 4) {
      guard += 1;
      page = await api('GET', `${API}/ops/feed?${feedParams({ before: page.next_before })}`);
      if (gen !== f.gen) return;
      got.push(...page.items);
    }
    if (!f.loaded || (got.length && got[got.length - 1].id > known && page.next_before != null)) {
      f.items = new Map(); // first load, or too far behind to stitch: start from the newest pages
      f.more = page.next_before != null;
    }
    for (const it of got) f.items.set(it.id, it);
    trimFeed();
    f.loaded = true;
    renderFeed();
  }

  async function loadFeedOlder() {
    const f = state.feed;
    if (!f.items.size) return;
    const gen = f.gen;
    const btn = $('#feed-older');
    btn.disabled = true;
    try {
      const before = Math.min(...f.items.keys());
      const page = await api('GET', `${API}/ops/feed?${feedParams({ before, limit: 100 })}`);
      if (gen !== f.gen) return;
      for (const it of page.items) f.items.set(it.id, it);
      f.more = page.next_before != null;
      f.cap += 100;
      renderFeed();
    } catch (e) {
      toast({ kind: 'info', title: 'Could not load older activity', body: e.message });
    } finally {
      btn.disabled = false;
    }
  }

  function trimFeed() {
    const f = state.feed;
    if (f.items.size <= Math.max(FEED_KEEP, f.cap)) return;
    const ids = [...f.items.keys()].sort((a, b) => b - a);
    for (const id of ids.slice(Math.max(FEED_KEEP, f.cap))) f.items.delete(id);
    f.more = true;
  }

  function resetFeed() {
    const f = state.feed;
    f.gen += 1;
    f.items = new Map();
    f.loaded = false;
    f.more = false;
    f.cap = FEED_RENDER;
    renderFeed();
    loadFeedHead().catch(() => {});
  }

  function describe(ev) {
    const p = ev.payload || {};
    const t = ev.event_type;
    let sev = '';
    let text;
    switch (t) {
      case 'workspace.created': text = `workspace created: ${p.name || ''}`; break;
      case 'worker.created': text = `${KIND_LABEL[p.kind] || p.kind || ''} worker created${p.name ? ` (${p.name})` : ''}`; break;
      case 'worker.state_changed': text = `${p.from || '?'} → ${p.to || '?'}${p.reason ? ` · ${p.reason}` : ''}`; break;
      case 'agent.ready': text = `${KIND_LABEL[p.agent_kind] || p.agent_kind || 'agent'} ${p.version || ''} ready`; break;
      case 'agent.exited':
        if (!p.expected) sev = 'failed';
        text = p.expected ? 'agent stopped' : `agent exited unexpectedly${p.returncode != null ? ` (code ${p.returncode})` : ''}`;
        break;
      case 'thread.started': text = p.resumed ? 'thread resumed' : 'thread started'; break;
      case 'thread.lost':
        sev = 'failed';
        text = `conversation lost (the agent had not saved it); continuing in thread ${String(p.new_thread_id || '?').slice(0, 8)}`;
        break;
      case 'worker.restart_exhausted': sev = 'failed'; text = `restart limit reached (${p.restarts ?? '?'} restarts)${p.last_error ? `: ${p.last_error}` : ''}`; break;
      case 'turn.started': text = `▶ ${p.prompt || 'turn started'}`; break;
      case 'turn.completed':
        sev = p.status === 'failed' ? 'failed' : (p.status === 'completed' ? 'ok' : '');
        text = `${p.status || 'done'}${p.final_message || p.error ? `: ${p.final_message || p.error}` : ''}`;
        break;
      case 'item.started':
      case 'item.completed':
        text = `${t === 'item.started' ? '→' : '✓'} ${p.item_type || 'item'}${p.command ? `: ${p.command}` : (p.tool_name ? `: ${p.tool_name}` : '')}`;
        break;
      case 'approval.requested':
        sev = 'needs_approval';
        text = `needs approval: ${p.command || p.tool_name || (p.diff ? 'a file change' : p.approval_kind || '')}`;
        break;
      case 'approval.decided': text = `approval ${p.decision || 'decided'}${p.by ? ` by ${p.by}` : ''}`; break;
      case 'question.requested': {
        sev = 'needs_input';
        const qs = Array.isArray(p.questions) ? p.questions : [];
        text = `asks: ${qs.map((q) => q.question || q.header || '').join(' / ') || 'a question'}`;
        break;
      }
      case 'question.answered': text = `question answered${p.by ? ` by ${p.by}` : ''}`; break;
      case 'plan.updated': text = `plan: ${(p.steps || []).length} steps`; break;
      case 'signal.acked': text = `${p.kind || 'signal'} acknowledged${p.by ? ` by ${p.by}` : ''}`; break;
      case 'health.stalled': sev = 'failed'; text = `no progress for ${Math.round(p.silent_s || 0)} s`; break;
      case 'health.disconnected': sev = 'failed'; text = p.reason || 'agent unreachable'; break;
      case 'health.workspace_stale': text = 'workspace quiet (stale)'; break;
      case 'dispatch.executed': {
        const rs = Array.isArray(p.results) ? p.results : [];
        text = `dispatch: ${rs.filter((r) => r.status === 'dispatched').length}/${rs.length} actions dispatched`;
        break;
      }
      case 'job.submitted': text = `job submitted (depth ${p.depth ?? 0}): ${p.prompt || ''}`; break;
      case 'job.state_changed':
        if (p.to === 'FAILED') sev = 'failed';
        text = `job ${p.from || '?'} → ${p.to || '?'}${p.reason ? ` · ${p.reason}` : ''}`;
        break;
      case 'job.waiting': text = `job waiting: ${p.reason || p.kind || ''}`; break;
      case 'job.progress': text = `job progress${p.percent != null ? ` ${p.percent}%` : ''}${p.message ? `: ${p.message}` : ''}`; break;
      default: text = p.name ? `${t}: ${p.name}` : (p.reason || p.message || t);
    }
    return { text: clip(text, 300), sev };
  }

  function renderFeed() {
    const f = state.feed;
    const list = $('#feed-list');
    const ids = [...f.items.keys()].sort((a, b) => b - a);
    const shown = ids.slice(0, f.cap);
    let html = '';
    for (const id of shown) {
      const ev = f.items.get(id);
      const d = describe(ev);
      const tid = ev.payload && ev.payload.thread_id;
      html += `<li class="fi${d.sev ? ` sev-${d.sev}` : ''}" data-event-id="${esc(ev.id)}" data-ws="${esc(ev.workspace_id)}"`
        + `${ev.needs_input ? ' data-needs-input="true"' : ''}>`
        + `<time datetime="${esc(ev.created_at)}" title="${esc(new Date(ev.created_at).toLocaleString())}">${esc(clock(ev.created_at))}</time>`
        + `<div class="fi-top"><span class="fi-ws">${esc(wsName(ev.workspace_id))}</span>`
        + `<span class="fi-type">${esc(ev.event_type)}</span>${tid ? threadLink(tid, `#${tshort(tid)}`) : ''}</div>`
        + `<div class="fi-text">${esc(d.text)}</div></li>`;
    }
    if (!shown.length) {
      html = f.loaded
        ? `<li class="empty fi-empty">${f.needs ? 'Nothing is waiting for you.' : 'No activity yet.'}</li>`
        : '<li class="empty fi-empty">Loading…</li>';
    }
    patch(list, html);
    $('#feed-older').hidden = !(f.more || ids.length > shown.length);
    $('#feed-count').textContent = f.needs ? `${ids.length} waiting` : (ids.length ? `${Math.min(ids.length, f.cap)} shown` : '');
  }

  // ------------------------------------------------------------------------------------------ render

  function renderAll() {
    renderHeader();
    renderActions();
    renderWorkspaces();
    renderWorkers();
    renderDispatchTargets();
    renderFeedFilter();
    renderJobs();
    renderFeed(); // workspace names may have changed
    renderChat(); // workspace names, and which approvals are still pending
  }

  function renderHeader() {
    const c = (state.snap && state.snap.counts) || { needs_input: 0, unacked_signals: 0 };
    const ci = $('#count-input');
    ci.dataset.n = String(c.needs_input);
    ci.innerHTML = `<b>${esc(c.needs_input)}</b> need${c.needs_input === 1 ? 's' : ''} you`;
    const cs = $('#count-signals');
    cs.dataset.n = String(c.unacked_signals);
    cs.innerHTML = `<b>${esc(c.unacked_signals)}</b> signal${c.unacked_signals === 1 ? '' : 's'}`;
    document.title = c.needs_input ? `(${c.needs_input}) Overseer` : 'Overseer';
    renderNotifyButton();
  }

  function actionModel() {
    const snap = state.snap;
    const pendingA = new Set(snap.pending_approvals.map((a) => a.id));
    const openQ = new Set(snap.open_questions.map((q) => q.id));
    const sigSev = new Map(snap.signals.map((s) => [s.id, s.severity]));
    const main = [];
    const updates = [];
    for (const a of snap.pending_approvals) {
      main.push({ sev: sigSev.get(`needs_approval:${a.id}`) ?? 90, ts: a.created_at, html: approvalHtml(a) });
    }
    for (const q of snap.open_questions) {
      main.push({ sev: sigSev.get(`needs_input:${q.id}`) ?? 85, ts: q.created_at, html: questionHtml(q) });
    }
    for (const s of snap.signals) {
      const ctx = s.context || {};
      if (s.kind === 'needs_approval' && pendingA.has(ctx.approval_id)) continue;
      if (s.kind === 'needs_input' && openQ.has(ctx.question_id)) continue;
      const resolvedRequest = (s.kind === 'needs_approval' || s.kind === 'needs_input') && !s.is_open;
      if (s.kind === 'completed' || resolvedRequest) updates.push(s);
      else main.push({ sev: s.severity, ts: s.raised_at, html: signalHtml(s) });
    }
    main.sort((x, y) => (y.sev - x.sev) || String(x.ts).localeCompare(String(y.ts)));
    return { main, updates };
  }

  function approvalHtml(a) {
    const key = `a:${a.id}`;
    const w = state.workersById.get(a.worker_id) || (state.apiWorkers && state.apiWorkers.get(a.worker_id));
    const title = a.kind === 'command' ? 'Run a command' : (a.kind === 'file_change' ? 'Apply a file change'
      : `Use ${a.tool_name || a.kind || 'a tool'}`);
    let body = '';
    if (a.command) body += `<pre class="cmd">${esc(a.command)}</pre>`;
    if (a.diff) body += `<pre class="cmd">${diffHtml(a.diff)}</pre>`;
    if (!a.command && !a.diff && a.tool_name) body += `<pre class="cmd">${esc(a.tool_name)}</pre>`;
    const meta = [w ? esc(KIND_LABEL[w.kind] || w.kind) : '', a.cwd ? `in <span class="mono">${esc(a.cwd)}</span>` : '',
      a.reason ? esc(a.reason) : ''].filter(Boolean).join(' · ');
    const btn = (decision, label, cls) => `<button type="button" class="btn ${cls}" data-act="decide" data-id="${esc(a.id)}"`
      + ` data-decision="${decision}" data-fkey="${esc(`${key}:${decision}`)}"${busyAttr(key)}>${label}</button>`;
    return `<li class="item sev-needs_approval" data-approval-id="${esc(a.id)}" data-ws="${esc(a.workspace_id)}">`
      + `<div class="item-head"><span class="badge needs_approval">approval</span><span class="item-title">${esc(title)}</span>`
      + `<span class="item-meta">${wsLink(a.workspace_id)}${a.thread_id ? ` · ${threadLink(a.thread_id)}` : ''} · ${timeEl(a.created_at)}</span></div>`
      + body + (meta ? `<div class="item-sub">${meta}</div>` : '')
      + `<div class="item-actions">${btn('accept', 'Approve', 'approve')}${btn('accept_for_session', 'Approve for session', '')}`
      + `${btn('decline', 'Deny', 'deny')}${errFor(key)}</div></li>`;
  }

  function questionHtml(q) {
    const key = `q:${q.id}`;
    const qs = Array.isArray(q.questions) && q.questions.length ? q.questions : [{ id: 'answer', question: 'The agent asks for input' }];
    const single = qs.length === 1;
    const sel = state.qSel.get(q.id) || {};
    let body = '';
    qs.forEach((item, i) => {
      const qid = item.id ?? item.question ?? String(i);
      const opts = Array.isArray(item.options) ? item.options : [];
      body += `<div class="q-text">${esc(item.question || item.header || 'Question')}</div>`;
      if (opts.length) {
        body += '<div class="item-actions">';
        for (const o of opts) {
          const label = typeof o === 'string' ? o : (o.label ?? '');
          const pressed = sel[qid] === label;
          body += `<button type="button" class="btn opt" data-act="answer-opt" data-id="${esc(q.id)}" data-qi="${i}"`
            + ` data-label="${esc(label)}" data-fkey="${esc(`${key}:${i}:${label}`)}"`
            + `${single ? '' : ` aria-pressed="${pressed}"`}`
            + `${o && o.description ? ` title="${esc(o.description)}"` : ''}${busyAttr(key)}>${esc(label)}</button>`;
        }
        body += '</div>';
      }
      body += `<div class="q-free"><input type="text" data-keep="${esc(`${key}:${i}`)}" aria-label="Answer: ${esc(item.question || 'question')}"`
        + ` placeholder="${opts.length ? 'Or type an answer' : 'Type an answer'}">`
        + (single ? `<button type="button" class="btn" data-act="answer-text" data-id="${esc(q.id)}" data-fkey="${esc(`${key}:send`)}"${busyAttr(key)}>Answer</button>` : '')
        + '</div>';
    });
    if (!single) {
      body += `<div class="item-actions"><button type="button" class="btn primary" data-act="answer-all" data-id="${esc(q.id)}"`
        + ` data-fkey="${esc(`${key}:send`)}"${busyAttr(key)}>Send answers</button></div>`;
    }
    const header = qs[0].header || 'Question';
    return `<li class="item sev-needs_input" data-question-id="${esc(q.id)}" data-ws="${esc(q.workspace_id)}">`
      + `<div class="item-head"><span class="badge needs_input">question</span><span class="item-title">${esc(header)}</span>`
      + `<span class="item-meta">${wsLink(q.workspace_id)}${q.thread_id ? ` · ${threadLink(q.thread_id)}` : ''} · ${timeEl(q.created_at)}</span></div>`
      + body + (state.errors.has(key) || state.notes.has(key) ? `<div>${errFor(key)}</div>` : '') + '</li>';
  }

  function signalHtml(s) {
    const key = `s:${s.id}`;
    const ctx = s.context || {};
    let body = '';
    if (ctx.error) body += `<pre class="cmd">${esc(clip(ctx.error, 2000))}</pre>`;
    else if (ctx.reason) body += `<div>${esc(ctx.reason)}</div>`;
    const meta = [ctx.task ? `task: ${esc(clip(ctx.task, 160))}` : '', s.raise_count > 1 ? `raised ${esc(s.raise_count)}×` : '',
      s.is_open ? '' : 'resolved'].filter(Boolean).join(' · ');
    return `<li class="item sev-${esc(s.kind)}${s.is_open ? '' : ' resolved'}" data-signal-id="${esc(s.id)}" data-ws="${esc(s.workspace_id)}">`
      + `<div class="item-head"><span class="badge ${esc(s.kind)}">${esc(SIGNAL_LABEL[s.kind] || s.kind)}</span>`
      + `<span class="item-title">${esc(s.title)}</span>`
      + `<span class="item-meta">${wsLink(s.workspace_id)}${s.thread_id ? ` · ${threadLink(s.thread_id)}` : ''} · ${timeEl(s.raised_at)}</span></div>`
      + body + (meta ? `<div class="item-meta">${meta}</div>` : '')
      + `<div class="item-actions"><button type="button" class="btn" data-act="ack" data-id="${esc(s.id)}" data-fkey="${esc(key)}"${busyAttr(key)}>Acknowledge</button>${errFor(key)}</div></li>`;
  }

  function renderActions() {
    if (!state.snap) return;
    const { main, updates } = actionModel();
    let html = main.length ? `<ul class="items">${main.map((i) => i.html).join('')}</ul>`
      : '<p class="empty">Nothing needs you right now.</p>';
    if (updates.length) {
      html += `<div class="group-title"><span>${updates.length} update${updates.length === 1 ? '' : 's'} (finished turns, answered requests)</span>`
        + `<button type="button" class="linkbtn" data-act="toggle-updates" aria-expanded="${state.showUpdates}" data-fkey="toggle-updates">${state.showUpdates ? 'Hide' : 'Show'}</button>`
        + `<button type="button" class="linkbtn" data-act="ack-updates" data-fkey="ack-updates"${busyAttr('ack-updates')}>Acknowledge all</button>${errFor('ack-updates')}</div>`;
      if (state.showUpdates) html += `<ul class="items">${updates.slice(0, 100).map(signalHtml).join('')}</ul>`;
    }
    patch($('#actions-body'), html);
    $('#n-actions').textContent = main.length ? String(main.length) : '';
  }

  /** Thread counts by status: the snapshot's totals (every thread), else the listed threads. */
  function threadCounts(w) {
    if (w.threads_by_status) return w.threads_by_status;
    const out = {};
    for (const t of w.threads) out[t.status] = (out[t.status] || 0) + 1;
    return out;
  }

  function wsActive(w) {
    const counts = threadCounts(w);
    return w.health !== 'healthy' || w.unacked_signals > 0 || (w.blockers || []).length > 0
      || [...ACTIVE_THREAD].some((s) => counts[s] > 0) || state.openWs.has(w.id);
  }

  function threadHtml(t) {
    const blockers = (t.blockers || []).map((b) => `<li>${esc(b.text || b.kind)}</li>`).join('');
    const meta = [t.next_step ? `next: ${esc(t.next_step)}` : '', `${esc(t.turn_count)} turn${t.turn_count === 1 ? '' : 's'}`,
      t.worker_id ? `worker ${esc(short(t.worker_id))}` : ''].filter(Boolean).map((m) => `<span>${m}</span>`).join('');
    return `<li class="thread st-${esc(t.status)}" id="thread-${esc(t.thread_id)}" data-thread-id="${esc(t.thread_id)}">`
      + `<div class="thread-head"><span class="badge ${esc(t.status)}">${esc(THREAD_LABEL[t.status] || t.status)}</span>`
      + `${t.agent_kind ? `<span class="badge kind">${esc(KIND_LABEL[t.agent_kind] || t.agent_kind)}</span>` : ''}`
      + `<span class="tid" title="${esc(t.thread_id)}">${esc(tshort(t.thread_id))}</span><span class="spacer"></span>${timeEl(t.last_activity_at)}</div>`
      + `<div class="thread-task">${t.current_task ? esc(t.current_task) : '<span class="muted">no task yet</span>'}</div>`
      + `<div class="thread-meta">${meta}</div>`
      + (blockers ? `<ul class="blockers">${blockers}</ul>` : '')
      + (t.last_message && t.status !== 'running' ? `<div class="thread-msg">${esc(t.last_message)}</div>` : '')
      + '</li>';
  }

  function wsHtml(w) {
    const muted = state.muted.has(w.id);
    const all = state.openWs.has(w.id);
    const threads = [...((all && state.wsThreads.get(w.id)) || w.threads)]
      .sort((a, b) => ((THREAD_ORDER[a.status] ?? 9) - (THREAD_ORDER[b.status] ?? 9))
        || String(b.last_activity_at || '').localeCompare(String(a.last_activity_at || '')));
    const total = Math.max(w.threads_total ?? 0, threads.length);
    const shown = all ? threads : threads.slice(0, THREADS_SHOWN);
    const counts = threadCounts(w);
    const summary = Object.keys(counts).sort((a, b) => (THREAD_ORDER[a] ?? 9) - (THREAD_ORDER[b] ?? 9))
      .map((st) => `${esc(counts[st])} ${esc(THREAD_LABEL[st] || st)}`).join(' · ');
    const blockers = (w.blockers || []).map((b) => esc(b.text || b.kind)).join('<br>');
    return `<section class="ws" id="ws-${esc(w.id)}" data-ws="${esc(w.id)}" aria-label="Workspace ${esc(w.name)}">`
      + `<div class="ws-head"><span class="dot ${esc(w.health)}" title="${esc(w.health)}"></span>`
      + `<span class="ws-name">${esc(w.name)}</span><span class="badge ${w.health === 'healthy' ? 'healthy' : (w.health === 'stale' ? 'stale' : 'failed')}">${esc(w.health)}</span>`
      + `<span class="ws-path" title="${esc(w.root_path)}">${esc(w.root_path)}</span>`
      + (w.unacked_signals ? `<span class="badge needs_approval" title="unacknowledged signals">${esc(w.unacked_signals)} signal${w.unacked_signals === 1 ? '' : 's'}</span>` : '')
      + `<button type="button" class="btn ghost small" data-act="mute" data-ws="${esc(w.id)}" aria-pressed="${muted}"`
      + ` data-fkey="${esc(`mute:${w.id}`)}" title="${muted ? 'Notifications for this workspace are off' : 'Turn off notifications for this workspace'}">${muted ? 'Muted' : 'Mute'}</button></div>`
      + '<dl class="ws-sum">'
      + `<dt>Task</dt><dd>${w.current_task ? esc(clip(w.current_task, 300)) : '<span class="muted">—</span>'}</dd>`
      + `<dt>Next</dt><dd>${w.next_step ? esc(w.next_step) : '<span class="muted">—</span>'}</dd>`
      + `<dt>Activity</dt><dd>${timeEl(w.last_activity_at)}</dd>`
      + (blockers ? `<dt>Blockers</dt><dd class="err">${blockers}</dd>` : '')
      + '</dl>'
      + (total ? `<div class="thread-counts muted small-text">${total} thread${total === 1 ? '' : 's'}: ${summary}</div>` : '')
      + (shown.length ? `<ul class="threads">${shown.map(threadHtml).join('')}</ul>` : '')
      + (total > shown.length || all
        ? `<div class="more"><button type="button" class="linkbtn" data-act="ws-threads" data-ws="${esc(w.id)}" data-fkey="${esc(`wst:${w.id}`)}" aria-expanded="${all}">`
          + `${all ? 'Show fewer threads' : `Show all ${total} threads`}</button></div>` : '')
      + '</section>';
  }

  function renderWorkspaces() {
    if (!state.snap) return;
    const wss = state.snap.workspaces;
    const active = [];
    const quiet = [];
    for (const w of wss) (wsActive(w) ? active : quiet).push(w);
    const rank = (w) => Math.max(0, ...Object.keys(threadCounts(w)).map((st) => 5 - (THREAD_ORDER[st] ?? 5)));
    active.sort((a, b) => (rank(b) - rank(a)) || String(b.last_activity_at || '').localeCompare(String(a.last_activity_at || '')));
    let html = active.map(wsHtml).join('');
    if (!wss.length) html = '<p class="empty">No workspaces yet. Create one with <code>POST /api/v1/workspaces</code>.</p>';
    else if (!active.length) html = '<p class="empty">No active work. Every workspace is quiet.</p>';
    if (quiet.length) {
      html += `<div class="group-title"><span>${quiet.length} quiet workspace${quiet.length === 1 ? '' : 's'} (no active work)</span>`
        + `<button type="button" class="linkbtn" data-act="toggle-quiet" aria-expanded="${state.showQuiet}" data-fkey="toggle-quiet">${state.showQuiet ? 'Hide' : 'Show'}</button></div>`;
      if (state.showQuiet) {
        html += '<ul class="quiet-list">' + quiet.map((w) => `<li><span class="dot ${esc(w.health)}"></span>`
          + `<button type="button" class="linkbtn name" data-act="open-ws" data-ws="${esc(w.id)}" data-fkey="${esc(`open:${w.id}`)}" title="${esc(w.root_path)}">${esc(w.name)}</button>`
          + `<span class="muted small-text">${w.threads_total ?? w.threads.length} thr · ${esc(rel(w.last_activity_at))}</span>`
          + `<button type="button" class="linkbtn small-text" data-act="mute" data-ws="${esc(w.id)}" aria-pressed="${state.muted.has(w.id)}"`
          + ` data-fkey="${esc(`qmute:${w.id}`)}">${state.muted.has(w.id) ? 'muted' : 'mute'}</button></li>`).join('') + '</ul>';
      }
    }
    patch($('#workspaces-body'), html);
    $('#n-workspaces').textContent = wss.length ? `${active.length} active / ${wss.length}` : '';
  }

  /** Every worker from GET /workers (with liveness); until it answers, the snapshot's first ones. */
  function workerRows() {
    if (state.apiWorkers) return [...state.apiWorkers.values()];
    return state.snap ? state.snap.workers : [];
  }

  function workerHtml(w) {
    const key = `w:${w.id}`;
    const btn = (act, label, cls = '') => `<button type="button" class="btn small ${cls}" data-act="${act}" data-id="${esc(w.id)}"`
      + ` data-fkey="${esc(`${key}:${act}`)}"${busyAttr(key)}>${label}</button>`;
    const armed = state.armed === key;
    let actions = '';
    if (w.status === 'RUNNING' || w.status === 'IDLE') actions += btn('worker-pause', 'Pause');
    if (w.status === 'PAUSED') actions += btn('worker-resume', 'Resume');
    if (w.status === 'IDLE' || w.status === 'RUNNING') actions += btn('turn-open', 'Send turn…');
    if (LIVE_WORKER.has(w.status) || w.status === 'FAILED') {
      actions += btn('worker-terminate', armed ? 'Confirm terminate' : 'Terminate', `danger${armed ? ' armed' : ''}`);
    }
    const box = state.turnBox === w.id
      ? `<form class="turnbox" data-act="turn-send" data-id="${esc(w.id)}"><input type="text" data-keep="${esc(`turn:${w.id}`)}"`
        + ` aria-label="Prompt for worker ${esc(w.name || short(w.id))}" placeholder="Prompt for a new turn" autocomplete="off">`
        + `<button type="submit" class="btn small primary" data-fkey="${esc(`${key}:send`)}"${busyAttr(key)}>Send</button>`
        + `<button type="button" class="btn small ghost" data-act="turn-close" data-fkey="${esc(`${key}:close`)}">Cancel</button></form>`
      : '';
    const meta = [wsLink(w.workspace_id), w.thread_id ? threadLink(w.thread_id) : '', `last event ${timeEl(w.last_event_at)}`,
      w.tokens_used ? `${esc(w.tokens_used)} tokens` : '', w.pid ? `pid ${esc(w.pid)}` : ''].filter(Boolean).map((m) => `<span>${m}</span>`).join('');
    return `<li class="worker" data-worker-id="${esc(w.id)}" data-kind="${esc(w.kind)}" data-status="${esc(w.status)}">`
      + `<div class="worker-head"><span class="worker-name">${esc(w.name || `${KIND_LABEL[w.kind] || w.kind} ${short(w.id)}`)}</span>`
      + `<span class="badge kind">${esc(KIND_LABEL[w.kind] || w.kind)}</span><span class="badge ${esc(w.status)}">${esc(w.status)}</span>`
      + (w.liveness ? `<span class="badge ${w.liveness === 'healthy' ? 'healthy' : (w.liveness === 'stopped' ? '' : 'stale')}">${esc(w.liveness)}</span>` : '')
      + `<span class="spacer"></span><span class="worker-actions">${actions}</span></div>`
      + `<div class="worker-meta">${meta}</div>`
      + (w.last_error ? `<div class="inline-err">${esc(clip(w.last_error, 300))}</div>` : '')
      + box + (state.errors.has(key) || state.notes.has(key) ? `<div>${errFor(key)}</div>` : '') + '</li>';
  }

  function renderWorkers() {
    if (!state.snap) return;
    const rows = workerRows();
    const ended = rows.filter((w) => w.status === 'TERMINATED' || w.status === 'COMPLETED');
    const visible = state.showEnded ? rows : rows.filter((w) => !(w.status === 'TERMINATED' || w.status === 'COMPLETED'));
    let html = visible.length ? `<ul class="workers">${visible.slice(0, WORKERS_SHOWN).map(workerHtml).join('')}</ul>`
      : '<p class="empty">No live workers.</p>';
    if (visible.length > WORKERS_SHOWN) html += `<p class="muted small-text">Showing ${WORKERS_SHOWN} of ${visible.length}.</p>`;
    if (ended.length) {
      html += `<div class="group-title"><span>${ended.length} ended</span><button type="button" class="linkbtn" data-act="toggle-ended"`
        + ` aria-expanded="${state.showEnded}" data-fkey="toggle-ended">${state.showEnded ? 'Hide' : 'Show'}</button></div>`;
    }
    patch($('#workers-body'), html);
    $('#n-workers').textContent = rows.length ? String(rows.length - ended.length) : '';
  }

  function renderDispatchTargets() {
    if (!state.snap) return;
    const filter = state.dispatchFilter.toLowerCase();
    const wss = state.snap.workspaces.filter((w) => !filter || w.name.toLowerCase().includes(filter));
    const html = wss.map((w) => `<label title="${esc(w.root_path)}"><input type="checkbox" data-dispatch-ws="${esc(w.id)}"`
      + `${state.dispatchSel.has(w.id) ? ' checked' : ''}><span>${esc(w.name)}</span></label>`).join('')
      || '<span class="muted">No workspaces.</span>';
    patch($('#dispatch-targets'), html);
  }

  function renderFeedFilter() {
    if (!state.snap) return;
    const sel = $('#feed-ws');
    const html = '<option value="">All workspaces</option>' + state.snap.workspaces
      .map((w) => `<option value="${esc(w.id)}"${state.feed.ws === w.id ? ' selected' : ''}>${esc(w.name)}</option>`).join('');
    if (sel._html !== html) { sel.innerHTML = html; sel._html = html; sel.value = state.feed.ws; }
  }

  function renderJobs() {
    const jobs = (state.snap && state.snap.jobs) || [];
    if (!jobs.length) { patch($('#jobs-body'), '<p class="empty">No jobs yet.</p>'); return; }
    const parentOf = (j) => j.parent_job_id ?? j.parent_id ?? j.parent ?? null;
    const ids = new Set(jobs.map((j) => String(j.id)));
    const byParent = new Map();
    for (const j of jobs) {
      const parent = parentOf(j);
      const k = parent != null && ids.has(String(parent)) ? String(parent) : '';
      if (!byParent.has(k)) byParent.set(k, []);
      byParent.get(k).push(j);
    }
    const seen = new Set();
    const tree = (k, depth) => {
      if (depth > 20) return '';
      return (byParent.get(k) || []).map((j) => {
        if (seen.has(String(j.id))) return '';
        seen.add(String(j.id));
        const kids = tree(String(j.id), depth + 1);
        const parent = parentOf(j);
        const status = String(j.status ?? '?');
        const meta = [`depth ${esc(j.depth ?? depth)}`, parent ? `parent ${esc(short(parent))}` : '',
          j.workspace_id ? wsLink(j.workspace_id) : '', j.thread_id ? threadLink(j.thread_id) : '',
          j.quota && j.quota.limit != null ? `quota ${esc(j.quota.in_use)}/${esc(j.quota.limit)}` : '']
          .filter(Boolean).join(' · ');
        const blockers = (j.blockers || []).map((b) => esc(b.reason || b.kind || 'waiting')).join('; ');
        return `<li data-job-id="${esc(j.id)}"><span class="badge ${esc(status)}">${esc(status.toLowerCase())}</span>`
          + ` <span class="mono" title="${esc(j.id)}">${esc(short(j.id))}</span> ${j.prompt ? esc(clip(j.prompt, 120)) : ''}`
          + `<div class="muted small-text">${meta}</div>`
          + (blockers ? `<div class="inline-err">waiting: ${blockers}</div>` : '')
          + (j.error ? `<div class="inline-err">${esc(clip(j.error, 200))}</div>` : '')
          + (kids ? `<ul>${kids}</ul>` : '') + '</li>';
      }).join('');
    };
    patch($('#jobs-body'), `<ul class="jobtree">${tree('', 0)}</ul>`);
  }

  function renderSupervisors() {
    const s = state.supervisors;
    let html;
    if (!s) html = '<p class="empty">Loading…</p>';
    else if (s.error) html = `<p class="empty">${esc(s.error)}</p>`;
    else if (!s.items.length) html = '<p class="empty">No supervisors.</p>';
    else {
      html = '<ul class="sups">' + s.items.map(({ sup, health, teams }) => {
        const hb = health && health.seconds_since_heartbeat != null ? `heartbeat ${Math.round(health.seconds_since_heartbeat)} s ago` : 'no heartbeat yet';
        const missed = health && health.missed_heartbeats ? ` · ${esc(health.missed_heartbeats)} missed` : '';
        const agents = health && health.agents ? ` · agents ${esc(health.agents.healthy)}/${esc(health.agents.total)} healthy` : '';
        const teamList = teams && Array.isArray(teams.teams) && teams.teams.length
          ? `<ul class="teams">${teams.teams.map((t) => `<li>${esc(t.team_name)} <span class="muted">· ${esc(t.active_members)} active member${t.active_members === 1 ? '' : 's'}${t.objective ? ` · ${esc(clip(t.objective, 80))}` : ''}</span></li>`).join('')}</ul>`
          : '<div class="muted small-text">No teams.</div>';
        return `<li class="sup" data-supervisor-id="${esc(sup.id)}"><div class="sup-head"><b>${esc(sup.name)}</b>`
          + `<span class="badge ${esc(sup.status)}">${esc(sup.status)}</span><span class="muted small-text">level ${esc(sup.hierarchy_level)} · ${wsLink(sup.workspace_id)}</span></div>`
          + `<div class="muted small-text">${esc(hb)}${missed}${agents}</div>${teamList}</li>`;
      }).join('') + '</ul>';
      if (s.total > s.items.length) html += `<p class="muted small-text">Showing ${s.items.length} of ${esc(s.total)}.</p>`;
    }
    patch($('#supervisors-body'), html);
  }

  // ------------------------------------------------------------------------------------------ alerts

  function currentAlerts(snap) {
    const out = [];
    for (const a of snap.pending_approvals) {
      out.push({ key: `a:${a.id}`, kind: 'needs_approval', ws: a.workspace_id, thread: a.thread_id,
        title: 'Approval needed', body: a.command || (a.diff ? clip(a.diff, 300) : '') || a.tool_name || a.kind });
    }
    for (const q of snap.open_questions) {
      const qs = Array.isArray(q.questions) ? q.questions : [];
      const body = qs.map((x) => {
        const opts = Array.isArray(x.options) ? x.options.map((o) => (typeof o === 'string' ? o : o.label)).join(' / ') : '';
        return `${x.question || x.header || ''}${opts ? ` (${opts})` : ''}`;
      }).join('\n');
      out.push({ key: `q:${q.id}`, kind: 'needs_input', ws: q.workspace_id, thread: q.thread_id, title: 'Question', body });
    }
    for (const s of snap.signals) {
      if (s.kind !== 'failed' || s.acked_at) continue;
      out.push({ key: `s:${s.id}:${s.raise_count}`, kind: 'failed', ws: s.workspace_id, thread: s.thread_id,
        title: 'Failed', body: (s.context && s.context.error) || s.title });
    }
    return out;
  }

  function updateAlerts(snap) {
    const alerts = currentAlerts(snap);
    const keys = new Set(alerts.map((a) => a.key));
    if (state.alertsReady) {
      for (const a of alerts) {
        if (state.seenAlerts.has(a.key)) continue;
        if (!state.muted.has(a.ws)) { toast(a); notify(a); }
      }
    }
    state.seenAlerts = keys;
    state.alertsReady = true;
    document.querySelectorAll('.toast[data-key]').forEach((t) => { if (!keys.has(t.dataset.key)) t.remove(); });
  }

  function toast(a) {
    const box = $('#toasts');
    const el = document.createElement('div');
    el.className = `toast sev-${a.kind}`;
    el.setAttribute('role', a.kind === 'info' ? 'status' : 'alert');
    if (a.key) el.dataset.key = a.key;
    if (a.ws) el.dataset.ws = a.ws;
    const label = SIGNAL_LABEL[a.kind] || 'note';
    el.innerHTML = `<div class="toast-head"><span class="badge ${esc(a.kind)}">${esc(label)}</span>`
      + `<span class="toast-title">${esc(a.title)}${a.ws ? ` · ${esc(wsName(a.ws))}` : ''}</span>`
      + '<button type="button" class="btn ghost x" data-act="toast-close" aria-label="Dismiss">×</button></div>'
      + (a.body ? `<div class="toast-body${a.kind === 'needs_approval' ? ' mono' : ''}">${esc(clip(a.body, 400))}</div>` : '')
      + '<div class="toast-actions">'
      + (a.thread ? threadLink(a.thread, 'Open thread') : '')
      + (a.kind !== 'info' ? '<a href="#actions">Action center</a>' : '')
      + (a.ws ? `<button type="button" class="linkbtn" data-act="mute" data-ws="${esc(a.ws)}">Mute ${esc(wsName(a.ws))}</button>` : '')
      + '</div>';
    box.prepend(el);
    while (box.children.length > 5) box.lastElementChild.remove();
    let hold = false;
    el.addEventListener('mouseenter', () => { hold = true; });
    el.addEventListener('mouseleave', () => { hold = false; });
    el.addEventListener('focusin', () => { hold = true; });
    el.addEventListener('focusout', () => { hold = false; });
    const ttl = a.kind === 'info' ? 6000 : 20000;
    const expire = () => { if (!el.isConnected) return; if (hold) setTimeout(expire, 3000); else el.remove(); };
    setTimeout(expire, ttl);
  }

  function notify(a) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    if (document.visibilityState === 'visible' && document.hasFocus()) return; // the toast is enough
    try {
      const n = new Notification(`${a.title} · ${wsName(a.ws)}`, { body: clip(a.body || '', 240), tag: a.key });
      n.onclick = () => {
        window.focus();
        if (a.thread) goThread(a.thread);
        n.close();
      };
    } catch (_) { /* some mobile browsers only notify from a service worker */ }
  }

  function renderNotifyButton() {
    const b = $('#notify-btn');
    if (!('Notification' in window)) { b.hidden = true; return; }
    const p = Notification.permission;
    b.hidden = p === 'granted';
    b.disabled = p === 'denied';
    b.textContent = p === 'denied' ? 'Notifications blocked' : 'Enable notifications';
  }

  // ------------------------------------------------------------------------------------------ threads

  async function goThread(tid, wsHint) {
    const wsId = state.threadWs.get(tid) || wsHint;
    if (wsId) {
      const loading = openWorkspace(wsId);
      renderWorkspaces();
      if (!document.getElementById(`thread-${tid}`)) { await loading; renderWorkspaces(); }
    }
    const el = document.getElementById(`thread-${tid}`);
    if (!el) return;
    el.scrollIntoView({ block: 'center', behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
    el.classList.add('flash');
    el.setAttribute('tabindex', '-1');
    el.focus({ preventScroll: true });
    setTimeout(() => el.classList.remove('flash'), 1800);
  }

  function goWorkspace(ws) {
    openWorkspace(ws);
    renderWorkspaces();
    const card = document.getElementById(`ws-${ws}`);
    if (!card) return;
    card.scrollIntoView({ block: 'start' });
    card.classList.add('flash');
    setTimeout(() => card.classList.remove('flash'), 1500);
  }

  function onHash() {
    const h = decodeURIComponent(location.hash.slice(1));
    if (h.startsWith('thread-')) goThread(h.slice(7));
    else if (h.startsWith('ws-')) goWorkspace(h.slice(3));
  }

  // ------------------------------------------------------------------------------------------ actions

  async function act(key, fn, okNote) {
    state.busy.add(key);
    state.errors.delete(key);
    state.notes.delete(key);
    rerenderInteractive();
    try {
      const out = await fn();
      if (okNote) state.notes.set(key, okNote);
      return out;
    } catch (e) {
      state.errors.set(key, e.code ? `${e.message} (${e.code})` : e.message);
      return undefined;
    } finally {
      state.busy.delete(key);
      rerenderInteractive();
      scheduleRefresh(0);
    }
  }

  function rerenderInteractive() {
    renderActions();
    renderWorkers();
    renderChat();
  }

  function answerBody(q, picked) {
    const answers = {};
    const qs = Array.isArray(q.questions) && q.questions.length ? q.questions : [{ id: 'answer' }];
    qs.forEach((item, i) => {
      const qid = item.id ?? item.question ?? String(i);
      const typed = ($(`[data-keep="${CSS.escape(`q:${q.id}:${i}`)}"]`) || {}).value || '';
      const v = typed.trim() || (picked && picked[qid]) || '';
      if (v) answers[qid] = v;
    });
    return { answers };
  }

  const findQuestion = (id) => (state.snap ? state.snap.open_questions.find((q) => q.id === id) : null);

  async function onClick(e) {
    const link = e.target.closest('a.tlink');
    if (link) {
      e.preventDefault();
      const tid = link.dataset.thread;
      history.pushState(null, '', `#thread-${tid}`);
      const holder = link.closest('[data-ws]');
      goThread(tid, holder ? holder.dataset.ws : undefined);
      return;
    }
    const wsA = e.target.closest('a.wslink');
    if (wsA) {
      e.preventDefault();
      const ws = wsA.getAttribute('href').slice(4);
      history.pushState(null, '', `#ws-${ws}`);
      goWorkspace(ws);
      return;
    }
    const el = e.target.closest('[data-act]');
    if (!el || el.tagName === 'FORM') return;
    const id = el.dataset.id;
    switch (el.dataset.act) {
      case 'decide': {
        const decision = el.dataset.decision;
        await act(`a:${id}`, () => api('POST', `${API}/ops/approvals/${encodeURIComponent(id)}`, { decision }),
          decision === 'decline' ? 'Denied' : 'Approved');
        break;
      }
      case 'answer-opt': {
        const q = findQuestion(id);
        if (!q) return;
        const item = q.questions[Number(el.dataset.qi)] || {};
        const qid = item.id ?? item.question ?? el.dataset.qi;
        if (q.questions.length <= 1) {
          await act(`q:${id}`, () => api('POST', `${API}/ops/questions/${encodeURIComponent(id)}/answer`,
            { answers: { [qid]: el.dataset.label } }), 'Answered');
        } else {
          const sel = { ...(state.qSel.get(id) || {}) };
          sel[qid] = el.dataset.label;
          state.qSel.set(id, sel);
          renderActions();
        }
        break;
      }
      case 'answer-text':
      case 'answer-all': {
        const q = findQuestion(id);
        if (!q) return;
        const body = answerBody(q, state.qSel.get(id));
        await act(`q:${id}`, () => api('POST', `${API}/ops/questions/${encodeURIComponent(id)}/answer`, body), 'Answered');
        break;
      }
      case 'ack':
        await act(`s:${id}`, () => api('POST', `${API}/ops/signals/${encodeURIComponent(id)}/ack`));
        break;
      case 'ack-updates': {
        const { updates } = actionModel();
        await act('ack-updates', () => Promise.all(updates.map((s) => api('POST', `${API}/ops/signals/${encodeURIComponent(s.id)}/ack`))));
        break;
      }
      case 'toggle-updates': state.showUpdates = !state.showUpdates; renderActions(); break;
      case 'toggle-quiet': state.showQuiet = !state.showQuiet; renderWorkspaces(); break;
      case 'toggle-ended': state.showEnded = !state.showEnded; renderWorkers(); break;
      case 'open-ws': goWorkspace(el.dataset.ws); break;
      case 'ws-threads': {
        const ws = el.dataset.ws;
        if (state.openWs.has(ws)) { state.openWs.delete(ws); state.wsThreads.delete(ws); } else openWorkspace(ws);
        renderWorkspaces();
        break;
      }
      case 'mute': toggleMute(el.dataset.ws); break;
      case 'toast-close': el.closest('.toast').remove(); break;
      case 'worker-pause':
      case 'worker-resume': {
        const verb = el.dataset.act.slice(7);
        await act(`w:${id}`, () => api('POST', `${API}/workers/${encodeURIComponent(id)}/${verb}`));
        break;
      }
      case 'worker-terminate': {
        const key = `w:${id}`;
        if (state.armed !== key) { // two steps instead of a blocking confirm() dialog
          state.armed = key;
          renderWorkers();
          setTimeout(() => { if (state.armed === key) { state.armed = null; renderWorkers(); } }, 4000);
          return;
        }
        state.armed = null;
        await act(key, () => api('POST', `${API}/workers/${encodeURIComponent(id)}/terminate`));
        break;
      }
      case 'turn-open':
        state.turnBox = id;
        renderWorkers();
        { const i = $(`[data-keep="${CSS.escape(`turn:${id}`)}"]`); if (i) i.focus(); }
        break;
      case 'turn-close': state.turnBox = null; renderWorkers(); break;
      case 'dispatch-all':
        document.querySelectorAll('[data-dispatch-ws]').forEach((c) => { c.checked = true; state.dispatchSel.add(c.dataset.dispatchWs); });
        break;
      case 'dispatch-none':
        state.dispatchSel.clear();
        document.querySelectorAll('[data-dispatch-ws]').forEach((c) => { c.checked = false; });
        break;
      default: break;
    }
  }

  async function onSubmit(e) {
    const form = e.target;
    if (form.id === 'dispatch-form') { e.preventDefault(); await dispatch(); return; }
    if (form.id === 'chat-form') { e.preventDefault(); await chatSend(); return; }
    if (form.dataset.act === 'turn-send') {
      e.preventDefault();
      const id = form.dataset.id;
      const input = form.querySelector('input');
      const prompt = input.value;
      const ok = await act(`w:${id}`, () => api('POST', `${API}/workers/${encodeURIComponent(id)}/turns`, { prompt }), 'Turn sent');
      if (ok !== undefined) { state.turnBox = null; renderWorkers(); }
    }
  }

  async function dispatch() {
    const btn = $('#dispatch-submit');
    const out = $('#dispatch-results');
    const note = $('#dispatch-note');
    const prompt = $('#dispatch-prompt').value;
    const kind = $('#dispatch-kind').value;
    const targets = state.snap ? state.snap.workspaces.filter((w) => state.dispatchSel.has(w.id)) : [];
    const actions = targets.map((w, i) => ({ type: 'dispatch_turn', action_id: `${i + 1}-${w.name}`.slice(0, 100),
      workspace_id: w.id, prompt, agent_kind: kind }));
    btn.disabled = true;
    note.textContent = targets.length ? `Dispatching to ${targets.length} workspace${targets.length === 1 ? '' : 's'}…` : '';
    try {
      const res = await api('POST', `${API}/ops/dispatch`, { version: 'overseer.dispatch.v1', actions });
      const ok = res.results.filter((r) => r.status === 'dispatched').length;
      note.textContent = `${ok} of ${res.results.length} dispatched`;
      out.innerHTML = '<table class="results"><thead><tr><th>Action</th><th>Workspace</th><th>Status</th><th>Worker</th><th>Thread</th><th>Note</th></tr></thead><tbody>'
        + res.results.map((r) => `<tr data-status="${esc(r.status)}" data-action-id="${esc(r.action_id)}"><td>${esc(r.action_id)}</td>`
          + `<td>${r.workspace_id ? esc(wsName(r.workspace_id)) : ''}</td><td><span class="badge ${r.status === 'dispatched' ? 'completed' : 'failed'}">${esc(r.status)}</span></td>`
          + `<td class="mono">${esc(short(r.worker_id))}</td><td>${r.thread_id ? threadLink(r.thread_id, tshort(r.thread_id)) : ''}</td>`
          + `<td>${r.error ? `<span class="err">${esc(r.error.code)}: ${esc(r.error.message)}</span>` : (r.idempotent_replay ? 'replayed' : '')}</td></tr>`).join('')
        + '</tbody></table>';
      if (ok === res.results.length) $('#dispatch-prompt').value = '';
    } catch (e) {
      note.textContent = '';
      const violations = (e.details && e.details.violations) || [];
      out.innerHTML = `<p class="err" role="alert">${esc(e.message)}${e.code ? ` (${esc(e.code)})` : ''}</p>`
        + (violations.length ? `<ul class="violations">${violations.map((v) => `<li><span class="mono">${esc(v.path)}</span> <b>${esc(v.code)}</b> ${esc(v.message)}</li>`).join('')}</ul>` : '');
    } finally {
      btn.disabled = false;
      scheduleRefresh(0);
    }
  }

  // ------------------------------------------------------------------------------------------ chat
  // The global Supervisor chat: GET /chat/messages (last 100, older via `before`, newer via `after` on each
  // `chat.message` stream event), POST /chat/messages to send. Approve / Deny on news use /ops/approvals.

  const CHAT_PAGE = 100;
  const CHAT_KEEP = 2000;
  const ROLE_LABEL = { user: 'You', assistant: 'Overseer', system: 'News' };
  const chat = {
    msgs: new Map(), cursor: 0, more: false, loaded: false, loading: false, error: null, pending: null, note: null,
    timer: null, fetching: false, again: false, lastAt: 0, stick: true, tick: null, atBottom: true,
  };

  function mergeChat(messages) {
    for (const m of messages || []) if (m && Number.isFinite(m.id)) chat.msgs.set(m.id, m);
    if (chat.msgs.size > CHAT_KEEP) {
      const ids = [...chat.msgs.keys()].sort((a, b) => a - b);
      for (const id of ids.slice(0, ids.length - CHAT_KEEP)) chat.msgs.delete(id);
      chat.more = true;
    }
  }

  const violationsHtml = (vs) => `<ul class="violations">${vs.map((v) => `<li><span class="mono">${esc(v.path)}</span>`
    + ` <b>${esc(v.code)}</b> ${esc(v.message)}</li>`).join('')}</ul>`;

  function contractHtml(p) {
    if (!p.contract || typeof p.contract !== 'object') return '';
    let json;
    try { json = JSON.stringify(p.contract, null, 2); } catch (_) { return ''; }
    return `<details class="msg-details"><summary>Contract</summary><pre class="cmd">${esc(clip(json, 8000))}</pre></details>`;
  }

  function chatResultsHtml(results) {
    if (!results.length) return '';
    return '<div class="table-wrap"><table class="results chat-results"><thead><tr><th>Action</th><th>Workspace</th>'
      + '<th>Status</th><th>Thread</th></tr></thead><tbody>'
      + results.map((r) => `<tr data-status="${esc(r.status)}" data-action-id="${esc(r.action_id)}"`
        + ` data-ws="${esc(r.workspace_id)}"><td class="mono">${esc(r.action_id)}</td>`
        + `<td>${r.workspace_id ? wsLink(r.workspace_id) : '—'}</td>`
        + `<td><span class="badge ${r.status === 'dispatched' ? 'completed' : 'failed'}">${esc(r.status)}</span>`
        + `${r.error ? `<div class="inline-err">${esc(r.error.code)}: ${esc(r.error.message)}</div>` : ''}</td>`
        + `<td>${r.thread_id ? threadLink(r.thread_id, tshort(r.thread_id)) : ''}</td></tr>`).join('')
      + '</tbody></table></div>';
  }

  /** Is the approval of a news message still pending? Server truth from the snapshot; a snapshot older than
   * the request (its event id) cannot know yet, so the buttons stay. */
  function approvalPending(p) {
    const snap = state.snap;
    if (!snap) return true;
    if (snap.pending_approvals.some((a) => a.id === p.approval_id)) return true;
    return Number.isFinite(p.event_id) && Number.isFinite(snap.last_event_id) && snap.last_event_id < p.event_id;
  }

  function newsWhere(p, m) {
    const ws = p.workspace_id || (m.workspace_ids || [])[0];
    return [ws ? wsLink(ws) : '', p.thread_id ? threadLink(p.thread_id) : ''].filter(Boolean).join(' · ');
  }

  function chatBody(m) {
    const p = m.payload || {};
    if (m.role === 'user') return `<div class="msg-text${p.kind === 'command' ? ' mono' : ''}">${esc(m.text)}</div>`;
    switch (p.kind) {
      case 'dispatch':
      case 'plan': {
        const rs = Array.isArray(p.results) ? p.results : [];
        const ok = rs.filter((r) => r.status === 'dispatched').length;
        return `<div class="msg-sum">${p.kind === 'plan' ? 'Plan run' : 'Dispatch'}: <b>${ok} of ${rs.length}</b>`
          + ` action${rs.length === 1 ? '' : 's'} dispatched</div>${chatResultsHtml(rs)}${p.kind === 'plan' ? contractHtml(p) : ''}`;
      }
      case 'dispatch_invalid':
      case 'plan_invalid': {
        const vs = Array.isArray(p.violations) ? p.violations : [];
        return `<div class="msg-refused">Refused: the ${p.kind === 'plan_invalid' ? 'plan' : 'dispatch'} is invalid,`
          + ' nothing was run.</div>' + violationsHtml(vs)
          + (p.raw != null ? `<details class="msg-details"><summary>Planner answer</summary><pre class="cmd">${esc(clip(p.raw, 4000))}</pre></details>`
            : contractHtml(p));
      }
      case 'error':
      case 'planner_error':
        return `<div class="msg-text err">${esc(m.text)}</div>`;
      case 'help':
        return `<pre class="msg-pre">${esc(m.text)}</pre>`;
      case 'status':
      case 'feed':
        return `<div class="msg-text msg-lines">${esc(m.text)}</div>`;
      case 'turn.completed': {
        const st = String(p.status || 'completed');
        return `<div class="msg-line"><span class="badge ${st === 'completed' ? 'completed' : (st === 'failed' ? 'failed' : '')}">`
          + `turn ${esc(st)}</span><span class="item-meta">${newsWhere(p, m)}</span></div>`
          + (p.final_message ? `<blockquote class="msg-quote">${esc(p.final_message)}</blockquote>` : '')
          + (p.error ? `<div class="inline-err">${esc(clip(p.error, 2000))}</div>` : '');
      }
      case 'approval.requested': {
        const key = `a:${p.approval_id}`;
        const pending = approvalPending(p);
        const btn = (decision, label, cls) => `<button type="button" class="btn small ${cls}" data-act="decide"`
          + ` data-id="${esc(p.approval_id)}" data-decision="${decision}" data-fkey="${esc(`${key}:${decision}`)}"${busyAttr(key)}>${label}</button>`;
        const what = p.command ? `<pre class="cmd">${esc(p.command)}</pre>`
          : (p.diff ? `<pre class="cmd">${diffHtml(p.diff)}</pre>` : `<div>${esc(p.approval_kind || 'an action')}</div>`);
        return `<div class="msg-line"><span class="badge needs_approval">approval</span><span class="item-meta">${newsWhere(p, m)}</span></div>`
          + what + (p.reason ? `<div class="item-sub">${esc(p.reason)}</div>` : '')
          + `<div class="item-actions">${pending ? btn('accept', 'Approve', 'approve') + btn('decline', 'Deny', 'deny')
            : '<span class="muted small-text">No longer pending.</span>'}${errFor(key)}</div>`;
      }
      case 'question.requested': {
        const qs = (Array.isArray(p.questions) ? p.questions : []).filter((q) => q && typeof q === 'object');
        return `<div class="msg-line"><span class="badge needs_input">question</span><span class="item-meta">${newsWhere(p, m)}</span></div>`
          + (qs.length ? qs.map((q) => `<div class="q-text">${esc(q.question || q.header || 'Question')}</div>`).join('')
            : '<div class="q-text">The agent asks for input.</div>')
          + '<div class="item-actions"><a href="#actions" class="msg-go">Answer in the action center</a></div>';
      }
      default:
        return `<div class="msg-text">${esc(m.text)}</div>`;
    }
  }

  function chatMsgHtml(m) {
    const p = m.payload || {};
    return `<div class="msg-head"><span class="msg-who">${esc(ROLE_LABEL[m.role] || m.role)}</span>`
      + (m.role !== 'user' && p.kind ? `<span class="msg-kind">${esc(p.kind)}</span>` : '')
      + `<span class="spacer"></span><time datetime="${esc(m.created_at)}" title="${esc(new Date(m.created_at).toLocaleString())}">`
      + `${esc(clock(m.created_at))}</time></div>${chatBody(m)}`;
  }

  const BAD_KINDS = new Set(['dispatch_invalid', 'plan_invalid', 'error', 'planner_error']);

  /** Keyed render: only changed messages are rewritten (open <details>, focus and scroll survive). */
  function renderChat(mode) {
    const list = $('#chat-list');
    const log = $('#chat-log');
    if (!list) return;
    const fromBottom = log.scrollHeight - log.scrollTop;
    const atBottom = fromBottom - log.clientHeight < 40;
    const ids = [...chat.msgs.keys()].sort((a, b) => a - b);
    const keep = new Set(ids.map(String));
    for (const child of [...list.children]) if (!keep.has(child.dataset.messageId || '')) child.remove();
    if (!ids.length) {
      const text = chat.error ? `Chat unavailable: ${chat.error}` : (chat.loaded
        ? 'No messages yet. Ask for work in plain words, or type /help for the commands.' : 'Loading…');
      const html = `<li class="empty">${esc(text)}</li>`;
      if (list.innerHTML !== html) list.innerHTML = html;
    }
    let prev = null;
    for (const id of ids) {
      const m = chat.msgs.get(id);
      let el = prev ? prev.nextElementSibling : list.firstElementChild;
      if (!el || el.dataset.messageId !== String(id)) {
        el = document.createElement('li');
        el.dataset.messageId = String(id);
        list.insertBefore(el, prev ? prev.nextElementSibling : list.firstElementChild);
      }
      const kind = (m.payload && m.payload.kind) || '';
      const cls = `msg role-${m.role}${BAD_KINDS.has(kind) ? ' bad' : ''}`;
      if (el.className !== cls) el.className = cls;
      el.dataset.role = m.role;
      el.dataset.kind = kind;
      patch(el, chatMsgHtml(m));
      prev = el;
    }
    $('#chat-older').hidden = !chat.more;
    renderChatPending();
    if (mode === 'older') log.scrollTop = log.scrollHeight - fromBottom;
    else if (chat.stick || atBottom) log.scrollTop = log.scrollHeight;
    chat.stick = false;
    chat.atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  function renderChatPending() {
    const el = $('#chat-pending');
    const p = chat.pending;
    if (!p) { el.hidden = true; el.textContent = ''; return; }
    const s = Math.floor((Date.now() - p.started) / 1000);
    const stored = [...chat.msgs.values()].some((m) => m.role === 'user' && m.id > p.afterMax && m.text === p.text);
    const what = p.command ? 'Running the command…' : 'The planner is working… (a plan can take up to a minute)';
    const html = (stored ? '' : `<div class="msg role-user pending"><div class="msg-head"><span class="msg-who">You</span>`
      + `<span class="spacer"></span><span>sending</span></div><div class="msg-text">${esc(p.text)}</div></div>`)
      + `<div class="pending-line"><span class="spinner" aria-hidden="true"></span>${esc(what)} <span class="muted">${s} s</span></div>`;
    if (el._html !== html) { el.innerHTML = html; el._html = html; }
    el.hidden = false;
  }

  function renderChatNote() {
    const n = $('#chat-note');
    n.textContent = chat.note ? chat.note.text : '';
    n.className = `small-text${chat.note && chat.note.err ? ' inline-err' : ' muted'}`;
    n.setAttribute('role', chat.note && chat.note.err ? 'alert' : 'status');
  }

  async function loadChat() {
    if (chat.loading || state.signedOut) return;
    chat.loading = true;
    try {
      const page = await api('GET', `${API}/chat/messages?limit=${CHAT_PAGE}`);
      mergeChat(page.messages);
      chat.more = !!page.has_more;
      chat.cursor = Math.max(chat.cursor, page.last_id ?? 0);
      chat.loaded = true;
      chat.error = null;
      chat.stick = true;
    } catch (e) {
      chat.error = e.code ? `${e.message} (${e.code})` : e.message;
    } finally {
      chat.loading = false;
      renderChat();
    }
  }

  /** Fetch the messages after the last one read (coalesced: at most every 250 ms). */
  function scheduleChat(delay = 100) {
    if (state.signedOut) return;
    if (!chat.loaded) { loadChat(); return; }
    if (chat.fetching) { chat.again = true; return; }
    if (chat.timer) return;
    chat.timer = setTimeout(fetchChatNew, Math.max(delay, chat.lastAt + MIN_REFRESH_MS - Date.now(), 0));
  }

  async function fetchChatNew() {
    chat.timer = null;
    chat.fetching = true;
    chat.lastAt = Date.now();
    try {
      for (let i = 0; i < 10; i += 1) { // `cursor` only moves with GET ?after= (a POST's ids may skip news)
        const page = await api('GET', `${API}/chat/messages?${new URLSearchParams({ after: String(chat.cursor), limit: '500' })}`);
        mergeChat(page.messages);
        if (page.last_id != null) chat.cursor = Math.max(chat.cursor, page.last_id);
        if (!page.has_more) break;
      }
      renderChat();
    } catch (_) {
      /* the next event, the stream's `ready` or the 60 s safety net reads again */
    } finally {
      chat.fetching = false;
      if (chat.again) { chat.again = false; scheduleChat(); }
    }
  }

  async function loadChatOlder() {
    const ids = [...chat.msgs.keys()];
    if (!ids.length) return;
    const btn = $('#chat-older');
    btn.disabled = true;
    try {
      const page = await api('GET', `${API}/chat/messages?${new URLSearchParams({ before: String(Math.min(...ids)), limit: String(CHAT_PAGE) })}`);
      mergeChat(page.messages);
      chat.more = !!page.has_more;
      renderChat('older');
    } catch (e) {
      chat.note = { err: true, text: `Could not load older messages: ${e.message}` };
      renderChatNote();
    } finally {
      btn.disabled = false;
    }
  }

  async function chatSend() {
    const input = $('#chat-input');
    const text = input.value;
    if (chat.pending || !text.trim()) return;
    const ids = [...chat.msgs.keys()];
    chat.pending = { text, started: Date.now(), afterMax: ids.length ? Math.max(...ids) : 0, command: text.trim().startsWith('/') };
    chat.note = null;
    input.value = '';
    $('#chat-send').disabled = true;
    $('#chat-send').setAttribute('aria-busy', 'true');
    $('#chat-form').dataset.pending = 'true';
    renderChatNote();
    chat.stick = true;
    renderChat();
    chat.tick = setInterval(renderChatPending, 1000);
    try {
      const res = await api('POST', `${API}/chat/messages`, { text });
      mergeChat(res.messages);
    } catch (e) {
      if (!input.value) input.value = text;
      chat.note = { err: true, text: e.code ? `Not sent: ${e.message} (${e.code})` : `Not sent: ${e.message}` };
    } finally {
      clearInterval(chat.tick);
      chat.pending = null;
      $('#chat-send').disabled = false;
      $('#chat-send').removeAttribute('aria-busy');
      delete $('#chat-form').dataset.pending;
      renderChatNote();
      chat.stick = true;
      renderChat();
      scheduleChat(0); // news that arrived meanwhile, and messages of other tabs
    }
  }

  // ------------------------------------------------------------------------------------------ stream

  const stream = { es: null, lastId: null, attempts: 0, retryTimer: null, downSince: null };
  const STREAM_TEXT = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', disconnected: 'disconnected',
    'signed-out': 'signed out' };

  function setStream(st) {
    const el = $('#stream-state');
    if (el.dataset.state === st) return;
    el.dataset.state = st;
    el.textContent = STREAM_TEXT[st] || st;
    el.title = st === 'live' ? 'Following the live event stream' : (st === 'disconnected'
      ? 'The server cannot be reached; retrying. What you see may be out of date.' : '');
  }

  function noteId(e) {
    const id = parseInt(e.lastEventId, 10);
    if (Number.isFinite(id)) stream.lastId = id;
  }

  function onStreamEvent(e) {
    noteId(e);
    if (NOISE.has(e.type)) return;
    if (e.type === 'chat.message') { scheduleChat(); return; } // the chat only: the snapshot is unchanged
    scheduleRefresh();
    if (/^(supervisor|team)\./.test(e.type)) scheduleSupervisors();
  }

  function openStream() {
    if (state.signedOut) return;
    clearTimeout(stream.retryTimer);
    stream.retryTimer = null;
    if (stream.es) stream.es.close();
    const q = new URLSearchParams({ types: STREAM_TYPES });
    if (stream.lastId != null) q.set('last_event_id', String(stream.lastId));
    const es = new EventSource(`${API}/ops/stream?${q}`);
    stream.es = es;
    es.addEventListener('ready', (e) => {
      if (es !== stream.es) return;
      noteId(e);
      stream.attempts = 0;
      stream.downSince = null;
      setStream('live');
      scheduleRefresh(0); // whatever happened while we were away: read the truth again
      scheduleSupervisors(0);
      scheduleChat(0);
    });
    es.addEventListener('reconnect', (e) => {
      if (es !== stream.es) return;
      try {
        const d = JSON.parse(e.data);
        if (Number.isFinite(d.last_event_id)) stream.lastId = d.last_event_id;
      } catch (_) { /* keep the last id seen */ }
      es.close();
      stream.es = null;
      streamDown();
    });
    for (const t of KNOWN_EVENTS) es.addEventListener(t, onStreamEvent);
    es.onmessage = onStreamEvent;
    es.onerror = () => {
      if (es !== stream.es) return;
      es.close(); // we run our own backoff (EventSource's own retry gives up on HTTP errors anyway)
      stream.es = null;
      streamDown();
    };
  }

  function streamDown() {
    stream.attempts += 1;
    if (!stream.downSince) stream.downSince = Date.now();
    setStream(Date.now() - stream.downSince > 15000 ? 'disconnected' : 'reconnecting');
    const base = stream.attempts === 1 ? 200 : Math.min(8000, 400 * 2 ** Math.min(stream.attempts - 2, 5));
    const delay = base * (0.8 + Math.random() * 0.4);
    clearTimeout(stream.retryTimer);
    stream.retryTimer = setTimeout(async () => {
      if (stream.attempts >= 3) { // an EventSource cannot see a 401: ask the API once in a while
        try { await api('GET', `${API}/ops/snapshot`); } catch (err) { if (err.status === 401) return; }
      }
      openStream();
    }, delay);
  }

  // ------------------------------------------------------------------------------------------ boot

  function tick() {
    document.querySelectorAll('time[data-rel]').forEach((t) => { t.textContent = rel(t.getAttribute('datetime')); });
    if (stream.downSince && Date.now() - stream.downSince > 15000) setStream('disconnected');
  }

  function boot() {
    document.addEventListener('click', (e) => { onClick(e).catch((err) => console.error(err)); });
    document.addEventListener('submit', (e) => { onSubmit(e).catch((err) => console.error(err)); });
    document.addEventListener('change', (e) => {
      const c = e.target;
      if (c.matches && c.matches('[data-dispatch-ws]')) {
        if (c.checked) state.dispatchSel.add(c.dataset.dispatchWs); else state.dispatchSel.delete(c.dataset.dispatchWs);
      }
    });
    $('#dispatch-filter').addEventListener('input', (e) => { state.dispatchFilter = e.target.value; renderDispatchTargets(); });
    $('#feed-needs').addEventListener('click', (e) => {
      state.feed.needs = !state.feed.needs;
      e.currentTarget.setAttribute('aria-pressed', String(state.feed.needs));
      resetFeed();
    });
    $('#feed-ws').addEventListener('change', (e) => { state.feed.ws = e.target.value; resetFeed(); });
    $('#feed-older').addEventListener('click', () => { loadFeedOlder(); });
    $('#chat-older').addEventListener('click', () => { loadChatOlder(); });
    { // a log read at its end stays at its end when it grows or narrows (rotation, a message unfolding)
      const log = $('#chat-log');
      log.addEventListener('scroll', () => { chat.atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40; },
        { passive: true });
      if ('ResizeObserver' in window) {
        const ro = new ResizeObserver(() => { if (chat.atBottom) log.scrollTop = log.scrollHeight; });
        [log, $('#chat-list'), $('#chat-pending')].forEach((el) => ro.observe(el));
      }
    }
    $('#chat-input').addEventListener('keydown', (e) => { // Enter sends, Shift+Enter is a new line
      if (e.key !== 'Enter' || e.shiftKey || e.isComposing) return;
      e.preventDefault();
      chatSend().catch((err) => console.error(err));
    });
    $('#notify-btn').addEventListener('click', async () => {
      try { await Notification.requestPermission(); } catch (_) { /* old Safari: callback form */ }
      renderNotifyButton();
    });
    $('#signout').addEventListener('click', async () => {
      try { await api('POST', '/auth/logout'); } catch (_) { /* signed out anyway */ }
      location.replace('/');
    });
    window.addEventListener('hashchange', onHash);
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') { scheduleRefresh(0); scheduleChat(0); }
    });
    setInterval(tick, 10000);
    setInterval(() => { scheduleRefresh(0); scheduleChat(0); }, 60000); // a safety net for event types this page does not know
    setInterval(() => scheduleSupervisors(0), 30000);
    renderNotifyButton();
    setStream('connecting');
    doRefresh().then(() => { if (location.hash) onHash(); });
    loadSupervisors();
    loadChat();
    openStream();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
})();

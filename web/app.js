// lote dashboard: plain JavaScript, no dependencies, embedded in the binary.
// Routes live in the URL fragment (#/commands?status=error), so every view
// with its filters is a shareable link. All text goes through textContent.
'use strict';

const API = '/api/v1';
const STATUSES = {
  commands: ['awaiting', 'pending', 'processing', 'success', 'error', 'cancelled'],
  events: ['pending', 'processing', 'success', 'error'],
  batches: ['pending', 'processing', 'success', 'error', 'cancelled'],
};
const FILTERS = ['type', 'status', 'institution', 'entity', 'from', 'to', 'error', 'batch', 'origin'];
let me = null;          // {role, institution_id}
let stream = null;      // AbortController of the live stream
let onSummary = null;   // the overview's live-update hook

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

function token() { return localStorage.getItem('lote.token'); }

function toast(msg, bad) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = bad ? 'bad' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

class ApiError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = { Authorization: 'Bearer ' + token() };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(API + path, {
    method: opts.method || 'GET', headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  if (r.status === 401) { logout('Your token was refused: ' + (j && j.error || 'unauthorized')); throw new ApiError(401, 'unauthorized'); }
  if (!r.ok) throw new ApiError(r.status, (j && j.error) || r.statusText);
  return j;
}

function status(s) { return h('span', { class: 'status s-' + s }, s); }
function fmtTime(t) { return t ? t.replace('T', ' ').replace(/\.\d+/, '').replace(/\+00:00$/, 'Z') : ''; }
function fmtAge(s) {
  if (s === null || s === undefined) return '—';
  if (s < 60) return Math.round(s) + 's';
  if (s < 3600) return Math.round(s / 60) + 'm';
  if (s < 86400) return (s / 3600).toFixed(1) + 'h';
  return (s / 86400).toFixed(1) + 'd';
}
function fmtMs(ms) {
  if (ms === null || ms === undefined) return '';
  return ms < 1000 ? Math.round(ms) + 'ms' : (ms / 1000).toFixed(ms < 10000 ? 2 : 0) + 's';
}
function fmtN(n) { return (n || 0).toLocaleString('en-US'); }
function short(uuid) { return uuid ? uuid.slice(0, 8) : ''; }
function link(kind, id, text) { return h('a', { href: '#/' + kind + '/' + id }, text || (kind.slice(0, -1) + ' ' + id)); }
function canAct() { return me && (me.role === 'operator' || me.role === 'admin'); }

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  return { parts: path.split('/').filter(Boolean), params: new URLSearchParams(qs || '') };
}

// ---------------------------------------------------------------- login

function logout(msg) {
  localStorage.removeItem('lote.token');
  me = null;
  if (stream) stream.abort();
  renderLogin(msg);
}

function renderLogin(msg) {
  document.getElementById('who').textContent = '';
  document.getElementById('logout').hidden = true;
  const input = h('input', { type: 'password', id: 'token', placeholder: 'lote_…', autocomplete: 'off' });
  const form = h('form', { class: 'panel login', onsubmit: (e) => {
    e.preventDefault();
    localStorage.setItem('lote.token', input.value.trim());
    start();
  } },
  h('h1', {}, 'Sign in to lote'),
  h('p', { class: 'muted' }, 'Paste an API token. Create one with ',
    h('code', {}, 'lote tokens add --role viewer|operator|admin'), '.'),
  msg ? h('p', { class: 'muted' }, msg) : null,
  input, h('button', { type: 'submit' }, 'Sign in'));
  document.getElementById('main').replaceChildren(form);
}

// ---------------------------------------------------------------- live stream

// Server-Sent Events read with fetch, so the token travels in a header.
async function startStream() {
  if (stream) stream.abort();
  stream = new AbortController();
  const ctl = stream;
  while (!ctl.signal.aborted) {
    try {
      const r = await fetch(API + '/stream', { headers: { Authorization: 'Bearer ' + token() }, signal: ctl.signal });
      if (!r.ok) throw new Error('stream ' + r.status);
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      setLive(true);
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const msg = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = msg.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (data && onSummary) { try { onSummary(JSON.parse(data)); } catch (e) { /* partial */ } }
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    setLive(false);
    await new Promise((res) => setTimeout(res, 3000));
  }
}

function setLive(on) {
  const el = document.getElementById('live');
  if (el) el.className = 'live' + (on ? ' on' : '');
}

// ---------------------------------------------------------------- overview

// Stacked bars per minute, drawn by uPlot (web/package.json, served from
// /vendor/): the first key at the bottom. The chart is made once per
// element and its data replaced on each summary; the legend shows the
// minute's own counts under the cursor.
function chart(el, points, keys, colors) {
  const xs = points.map((p) => Date.parse(p.t) / 1000);
  const stacked = keys.map((_, i) => points.map((p) => keys.slice(0, i + 1).reduce((s, k) => s + (p[k] || 0), 0)));
  // the tallest stack first, so each lower one is drawn over it
  const order = keys.map((_, i) => keys.length - 1 - i);
  const data = [xs, ...order.map((i) => stacked[i])];
  if (el.plot) { el.plot.setData(data); return; }
  const bars = uPlot.paths.bars({ size: [0.8, 40] });
  el.plot = new uPlot({
    width: Math.max(200, el.clientWidth), height: 150,
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [{ stroke: '#6b7280', grid: { show: false } },
      { stroke: '#6b7280', size: 40, grid: { stroke: '#eef0f3' }, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 1e5, 2e5, 5e5, 1e6] }],
    series: [{ value: (u, v) => (v == null ? '—' : fmtTime(new Date(v * 1000).toISOString())) },
      ...order.map((i) => ({
        label: keys[i], fill: colors[i], stroke: colors[i], width: 0, paths: bars, points: { show: false },
        value: (u, v, si, idx) => (idx == null ? '—' : fmtN((el.points[idx] || {})[keys[i]] || 0)),
      }))],
  }, data, el);
  new ResizeObserver(() => el.plot.setSize({ width: Math.max(200, el.clientWidth), height: 150 })).observe(el);
}

function renderOverview() {
  const main = document.getElementById('main');
  const cards = h('div', { class: 'cards', id: 'cards' });
  const thr = h('div', { class: 'chart' });
  const evc = h('div', { class: 'chart' });
  const types = h('tbody');
  const insts = h('tbody');
  main.replaceChildren(
    h('h1', {}, h('span', { id: 'live', class: 'live', title: 'live updates' }), 'Overview',
      me && me.institution_id ? h('span', { class: 'muted' }, ' — institution ' + me.institution_id) : null),
    cards,
    h('div', { class: 'row' },
      h('div', { class: 'panel' }, h('h2', {}, 'Commands finished per minute (last hour)'), thr),
      h('div', { class: 'panel' }, h('h2', {}, 'Events finished per minute'), evc)),
    h('div', { class: 'row' },
      h('div', { class: 'panel' }, h('h2', {}, 'Commands by type'),
        h('table', {}, h('thead', {}, h('tr', {}, ['type', ...STATUSES.commands].map((c) => h('th', {}, c)))), types)),
      me && !me.institution_id ? h('div', { class: 'panel' }, h('h2', {}, 'Busiest institutions'),
        h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'institution'), h('th', {}, 'finished'))), insts)) : null));
  onSummary = (s) => {
    const c = s.commands.by_status, e = s.events.by_status;
    const card = (label, n, href) => h('a', { class: 'card', href: href || null },
      h('div', { class: 'l' }, label), h('div', { class: 'n', 'data-testid': 'count-' + label.replace(/ /g, '-') }, n));
    cards.replaceChildren(
      card('pending', fmtN(c.pending), '#/commands?status=pending'),
      card('processing', fmtN(c.processing), '#/commands?status=processing'),
      card('awaiting', fmtN(c.awaiting), '#/commands?status=awaiting'),
      card('success', fmtN(c.success), '#/commands?status=success'),
      card('error', fmtN(c.error), '#/commands?status=error'),
      card('oldest pending', fmtAge(s.commands.oldest_pending_age_s)),
      card('error rate 1h', ((s.error_rate_1h || 0) * 100).toFixed(1) + '%'),
      card('events pending', fmtN(e.pending), '#/events?status=pending'),
      card('open batches', fmtN(s.batches.open), '#/batches?status=pending,processing,error'),
      card('workers', fmtN(s.workers), '#/workers'));
    thr.points = evc.points = s.throughput;
    chart(thr, s.throughput, ['success', 'error'], ['#1a8f4c', '#c9352b']);
    chart(evc, s.throughput, ['events'], ['#2b5fd9']);
    types.replaceChildren(...s.commands.by_type.map((t) => h('tr', {},
      h('td', {}, h('a', { href: '#/commands?type=' + encodeURIComponent(t.type) }, t.type)),
      STATUSES.commands.map((st) => h('td', { class: 'num' }, t[st] ? h('a', {
        href: '#/commands?type=' + encodeURIComponent(t.type) + '&status=' + st }, fmtN(t[st])) : '')))));
    insts.replaceChildren(...(s.by_institution || []).map((i) => h('tr', {},
      h('td', {}, h('a', { href: '#/commands?institution=' + i.institution_id }, i.institution_id)),
      h('td', { class: 'num' }, fmtN(i.finished)))));
  };
  api('/summary').then(onSummary).catch((e) => toast(e.message, true));
}

// ---------------------------------------------------------------- lists

const COLUMNS = {
  commands: [
    ['id', (r) => link('commands', r.id, '#' + r.id)], ['type', (r) => r.type], ['status', (r) => status(r.status)],
    ['attempt', (r) => r.attempt + '/' + r.max_attempts], ['institution', (r) => short(r.institution_id)],
    ['origin', (r) => r.event_id ? link('events', r.event_id) : r.parent_id ? link('commands', r.parent_id) : ''],
    ['batch', (r) => r.batch_id ? link('batches', r.batch_id, '#' + r.batch_id) : ''],
    ['created', (r) => fmtTime(r.created_at)], ['duration', (r) => fmtMs(r.duration)],
    ['error', (r) => r.error || '', 'err'],
  ],
  events: [
    ['id', (r) => link('events', r.id, '#' + r.id)], ['type', (r) => r.type], ['status', (r) => status(r.status)],
    ['entity', (r) => r.entity_type + ':' + r.entity_id], ['institution', (r) => short(r.institution_id)],
    ['created', (r) => fmtTime(r.created_at)], ['duration', (r) => fmtMs(r.duration)],
    ['error', (r) => r.error || '', 'err'],
  ],
  batches: [
    ['id', (r) => link('batches', r.id, '#' + r.id)], ['type', (r) => r.type], ['status', (r) => status(r.status)],
    ['progress', (r) => progress(r.progress || {}, r.size)], ['institution', (r) => short(r.institution_id)],
    ['follow-up', (r) => r.next_command_id ? link('commands', r.next_command_id, '#' + r.next_command_id) : ''],
    ['created', (r) => fmtTime(r.created_at)], ['error', (r) => r.error || '', 'err'],
  ],
};

function progress(p, size) {
  const total = Math.max(size || 0, 1);
  const bar = h('div', { class: 'bar', title: JSON.stringify(p) });
  const part = (n, cls) => { const s = h('span', { class: cls }); s.style.width = (100 * (n || 0) / total) + '%'; return s; };
  bar.append(part(p.success, 'ok'), part((p.error || 0) + (p.cancelled || 0), 'bad'), part(p.processing, 'run'));
  return h('div', {}, bar, h('small', { class: 'muted' }, `${p.success || 0} / ${size} done`));
}

function renderList(kind, params) {
  const main = document.getElementById('main');
  const f = {};
  for (const k of FILTERS) f[k] = params.get(k) || '';
  const inputs = {};
  const field = (k, el) => { inputs[k] = el; el.name = k; return h('label', {}, k, el); };
  const statusSel = h('select', {}, h('option', { value: '' }, 'any'),
    STATUSES[kind].map((s) => h('option', { value: s, selected: f.status === s }, s)));
  if (f.status && !STATUSES[kind].includes(f.status)) statusSel.append(h('option', { value: f.status, selected: true }, f.status));
  const txt = (k, ph) => h('input', { value: f[k], placeholder: ph || '', size: k === 'institution' ? 36 : 14 });
  const form = h('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, el] of Object.entries(inputs)) if (el.value.trim()) q.set(k, el.value.trim());
    location.hash = '#/' + kind + (q.toString() ? '?' + q : '');
  } },
  field('type', txt('type', 'SendEmail')), field('status', statusSel),
  field('institution', txt('institution', 'uuid')), field('entity', txt('entity', 'Type:id')),
  field('from', txt('from', '2026-01-31')), field('to', txt('to', '2026-02-01T00:00Z')),
  field('error', txt('error', 'text in the error')),
  kind !== 'events' ? field('batch', txt('batch', 'id')) : null,
  kind !== 'events' ? field('origin', txt('origin', 'event:1')) : null,
  h('button', { type: 'submit' }, 'Filter'),
  h('button', { type: 'button', class: 'secondary', onclick: () => { location.hash = '#/' + kind; } }, 'Clear'));
  const cols = COLUMNS[kind];
  const tbody = h('tbody');
  const more = h('button', { class: 'secondary more', hidden: true }, 'Load more');
  const info = h('p', { class: 'muted' });
  const bulk = kind === 'commands' && canAct() && (f.status === 'error' || f.status === 'cancelled')
    ? h('button', { class: 'danger', onclick: () => bulkReprocess(Object.fromEntries(
      Object.entries(f).filter(([, v]) => v))) }, 'Reprocess all matching') : null;
  main.replaceChildren(h('h1', {}, kind[0].toUpperCase() + kind.slice(1)), form, bulk ? h('div', { class: 'actions' }, bulk) : null,
    h('table', { 'data-testid': 'list' }, h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c[0])))), tbody), more, info);
  const q = new URLSearchParams();
  for (const k of FILTERS) if (f[k]) q.set(k, f[k]);
  let loaded = 0;
  const load = (cursor) => {
    if (cursor) q.set('cursor', cursor); else q.delete('cursor');
    more.disabled = true;
    api('/' + kind + '?' + q).then((r) => {
      for (const row of r.items) tbody.append(h('tr', { 'data-id': row.id }, cols.map((c) => h('td', { class: c[2] || null, title: c[2] ? row.error : null }, c[1](row)))));
      loaded += r.items.length;
      more.hidden = !r.next_cursor;
      more.disabled = false;
      more.onclick = () => load(r.next_cursor);
      info.textContent = loaded ? `${loaded} shown, newest first` : 'Nothing matches these filters.';
    }).catch((e) => { info.textContent = e.message; toast(e.message, true); });
  };
  load(null);
}

async function bulkReprocess(filter) {
  try {
    const dry = await api('/commands/reprocess', { method: 'POST', body: Object.assign({}, filter, { dry_run: true }) });
    if (!dry.matched) { toast('Nothing to reprocess.'); return; }
    if (!confirm(`Reprocess ${dry.matched}${dry.more ? '+' : ''} commands?`)) return;
    const r = await api('/commands/reprocess', { method: 'POST', body: filter });
    toast(`Reprocessed ${r.reprocessed} commands.`);
    route();
  } catch (e) { toast(e.message, true); }
}

// ---------------------------------------------------------------- details

function kv(obj, skip) {
  return h('dl', { class: 'kv' }, Object.keys(obj).filter((k) => !(skip || []).includes(k) && obj[k] !== null)
    .sort().map((k) => [h('dt', {}, k), h('dd', {}, k.endsWith('_at') || k === 'run_at' ? fmtTime(obj[k])
      : k === 'status' ? status(obj[k]) : k === 'duration' ? fmtMs(obj[k]) : typeof obj[k] === 'object' ? JSON.stringify(obj[k]) : String(obj[k]))]));
}

function lineageTree(tree, here) {
  const cmds = tree.commands || [];
  const byParent = new Map();
  const ids = new Set(cmds.map((c) => c.id));
  for (const c of cmds) {
    const p = c.parent_id && ids.has(c.parent_id) ? c.parent_id : 0;
    if (!byParent.has(p)) byParent.set(p, []);
    byParent.get(p).push(c);
  }
  const batches = new Map((tree.batches || []).map((b) => [b.id, b]));
  const followUps = new Map((tree.batches || []).filter((b) => b.next_command_id).map((b) => [b.next_command_id, b]));
  const node = (c) => {
    const kids = byParent.get(c.id) || [];
    // children grouped by batch: members under a batch node, the follow-up after it
    const groups = new Map();
    const loose = [];
    for (const k of kids) {
      if (k.batch_id && batches.has(k.batch_id)) {
        if (!groups.has(k.batch_id)) groups.set(k.batch_id, []);
        groups.get(k.batch_id).push(k);
      } else if (!followUps.has(k.id)) loose.push(k);
    }
    for (const b of batches.values()) if (b.parent_id === c.id && !groups.has(b.id)) groups.set(b.id, []);
    const items = loose.map(node);
    for (const [bid, members] of groups) {
      const b = batches.get(bid);
      const fu = b.next_command_id && cmds.find((x) => x.id === b.next_command_id);
      items.push(h('li', {}, h('span', { class: 'node' }, h('span', { class: 'kind' }, 'batch'),
        link('batches', bid, '#' + bid + ' ' + b.type), ' ', status(b.status), ' ', h('small', { class: 'muted' }, members.length + ' shown of ' + b.size)),
      h('ul', {}, members.map(node), fu ? h('li', {}, h('span', { class: 'kind' }, 'then'), h('ul', {}, node(fu))) : null)));
    }
    return h('li', { class: c.id === here ? 'here' : null, 'data-command': c.id },
      h('span', { class: 'node' }, h('span', { class: 'kind' }, 'command'),
        link('commands', c.id, '#' + c.id + ' ' + c.type), ' ', status(c.status),
        c.original_id ? h('small', { class: 'muted' }, ' reprocesses #' + c.original_id) : null,
        c.replaced_by ? h('small', { class: 'muted' }, ' replaced by #' + c.replaced_by) : null),
      items.length ? h('ul', {}, items) : null);
  };
  const roots = (byParent.get(0) || []).filter((c) => !followUps.has(c.id) || !ids.has(c.parent_id)).map(node);
  const ev = tree.event;
  const root = ev ? h('li', {}, h('span', { class: 'node' }, h('span', { class: 'kind' }, 'event'),
    link('events', ev.id, '#' + ev.id + ' ' + ev.type), ' ', h('small', { class: 'muted' }, ev.entity_type + ':' + ev.entity_id), ' ', status(ev.status)),
  h('ul', {}, roots)) : roots;
  return h('ul', { class: 'tree', 'data-testid': 'lineage' }, root,
    tree.truncated ? h('li', { class: 'muted' }, '… more commands than shown') : null);
}

async function renderDetail(kind, id) {
  const main = document.getElementById('main');
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  let d;
  try { d = await api('/' + kind + '/' + encodeURIComponent(id)); } catch (e) {
    main.replaceChildren(h('h1', {}, kind.slice(0, -1) + ' ' + id), h('p', {}, e.message));
    return;
  }
  const row = d[kind.slice(0, -1)];
  const acts = h('div', { class: 'actions' });
  if (canAct() && kind === 'commands') {
    if (['success', 'error', 'cancelled'].includes(row.status) && !row.replaced_by)
      acts.append(h('button', { 'data-testid': 'reprocess', onclick: async () => {
        try {
          const r = await api('/commands/' + row.id + '/reprocess', { method: 'POST' });
          toast('Reprocessed as command ' + r.id);
          location.hash = '#/commands/' + r.id;
        } catch (e) { toast(e.message, true); }
      } }, 'Reprocess'));
    if (['pending', 'awaiting'].includes(row.status))
      acts.append(h('button', { class: 'danger', onclick: async () => {
        try { await api('/commands/' + row.id + '/cancel', { method: 'POST' }); toast('Cancelled'); route(); } catch (e) { toast(e.message, true); }
      } }, 'Cancel'));
  }
  if (canAct() && kind === 'batches' && ['pending', 'processing', 'error'].includes(row.status))
    acts.append(h('button', { class: 'danger', onclick: async () => {
      if (!confirm('Cancel this batch and its follow-up?')) return;
      try { const r = await api('/batches/' + row.id + '/cancel', { method: 'POST' }); toast('Cancelled ' + r.cancelled + ' commands'); route(); } catch (e) { toast(e.message, true); }
    } }, 'Cancel batch'));
  const parts = [h('h1', {}, kind.slice(0, -1) + ' #' + row.id + ' ', h('span', { class: 'muted' }, row.type), ' ', status(row.status)), acts,
    h('div', { class: 'row' }, h('div', { class: 'panel' }, kv(row, ['data'])),
      h('div', { class: 'panel' }, h('h2', {}, 'Payload'), h('pre', { 'data-testid': 'payload' }, JSON.stringify(row.data, null, 2))))];
  if (kind === 'commands') parts.push(h('div', { class: 'panel' }, h('h2', {}, 'Lineage'), lineageTree(d.tree, row.id)));
  if (d.attempts && d.attempts.length) parts.push(h('div', { class: 'panel' }, h('h2', {}, 'Failed attempts'),
    h('table', { 'data-testid': 'attempts' }, h('thead', {}, h('tr', {}, ['attempt', 'outcome', 'error', 'host', 'started', 'finished', 'retry at'].map((c) => h('th', {}, c)))),
      h('tbody', {}, d.attempts.map((a) => h('tr', {}, h('td', {}, a.attempt), h('td', {}, a.outcome), h('td', { class: 'err', title: a.error }, a.error || ''),
        h('td', {}, (a.host || '') + (a.pid ? ':' + a.pid : '')), h('td', {}, fmtTime(a.started_at)), h('td', {}, fmtTime(a.finished_at)), h('td', {}, fmtTime(a.retry_at))))))));
  if (kind === 'events') parts.push(h('div', { class: 'panel' }, h('h2', {}, 'Commands it caused'), miniTable('commands', d.commands)));
  if (kind === 'batches') {
    parts.push(h('div', { class: 'panel' }, h('h2', {}, 'Progress'), progress(d.progress, row.size),
      d.next ? h('p', {}, 'Follow-up: ', link('commands', d.next.id, '#' + d.next.id + ' ' + d.next.type), ' ', status(d.next.status)) : null));
    parts.push(h('div', { class: 'panel' }, h('h2', {}, 'Members'), miniTable('commands', d.members)));
  }
  main.replaceChildren(...parts);
}

function miniTable(kind, rows) {
  const cols = COLUMNS[kind];
  return h('table', {}, h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c[0])))),
    h('tbody', {}, (rows || []).map((r) => h('tr', {}, cols.map((c) => h('td', { class: c[2] || null }, c[1](r)))))));
}

// ---------------------------------------------------------------- other views

async function renderErrors() {
  const main = document.getElementById('main');
  const tbody = h('tbody');
  main.replaceChildren(h('h1', {}, 'Errors'), h('p', { class: 'muted' },
    'Failed commands without a copy yet, grouped by type and message (numbers blurred).'),
  h('table', { 'data-testid': 'errors' }, h('thead', {}, h('tr', {}, ['type', 'message', 'count', 'last', ''].map((c) => h('th', {}, c)))), tbody));
  try {
    const r = await api('/errors');
    if (!r.items.length) tbody.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No failed commands.')));
    for (const g of r.items) {
      // the longest digit-free start of the message is what the bulk filter matches
      const text = (g.example.split(/\d/)[0] || g.example).trim().slice(0, 200);
      const filter = { status: 'error', type: g.type };
      if (text) filter.error = text;
      tbody.append(h('tr', {}, h('td', {}, g.type),
        h('td', { class: 'err' }, h('a', { href: '#/commands?' + new URLSearchParams(filter) }, g.message)),
        h('td', { class: 'num' }, fmtN(g.count)), h('td', {}, fmtTime(g.last_at)),
        h('td', {}, canAct() ? h('button', { class: 'danger', onclick: () => bulkReprocess(filter) }, 'Reprocess all') : '')));
    }
  } catch (e) { toast(e.message, true); }
}

async function renderSimple(title, path, cols) {
  const main = document.getElementById('main');
  const tbody = h('tbody');
  main.replaceChildren(h('h1', {}, title), h('table', {}, h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c[0])))), tbody));
  try {
    const r = await api(path);
    if (!r.items.length) tbody.append(h('tr', {}, h('td', { colspan: cols.length, class: 'muted' }, 'Nothing yet.')));
    for (const row of r.items) tbody.append(h('tr', {}, cols.map((c) => h('td', {}, c[1](row)))));
  } catch (e) { toast(e.message, true); }
}

function route() {
  if (!token()) { renderLogin(); return; }
  onSummary = null;
  const { parts, params } = parseHash();
  const top = parts[0] || 'overview';
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.nav === top);
  if (top === 'overview') renderOverview();
  else if (STATUSES[top] && parts[1]) renderDetail(top, parts[1]);
  else if (STATUSES[top]) renderList(top, params);
  else if (top === 'errors') renderErrors();
  else if (top === 'workers') renderSimple('Workers', '/workers', [
    ['id', (w) => w.id], ['host', (w) => w.host], ['pid', (w) => w.pid], ['alive', (w) => w.alive ? 'yes' : 'no'],
    ['heartbeat', (w) => fmtTime(w.heartbeat_at)], ['started', (w) => fmtTime(w.started_at)],
    ['command types', (w) => (w.command_types || []).join(', ')],
    ['running', (w) => (w.running || []).map((r) => link('commands', r.id, r.type + '#' + r.id))]]);
  else if (top === 'schedules') renderSimple('Schedules', '/schedules', [
    ['schedule', (s) => s.name || s.id], ['details', (s) => JSON.stringify(s)]]);
  else if (top === 'audit') renderSimple('Audit log', '/audit', [
    ['at', (a) => fmtTime(a.at)], ['actor', (a) => a.actor], ['action', (a) => a.action], ['target', (a) => a.target || ''],
    ['result', (a) => JSON.stringify(a.detail)], ['from', (a) => a.remote_addr || '']]);
  else document.getElementById('main').replaceChildren(h('p', {}, 'No such page.'));
}

async function start() {
  try {
    me = await api('/me');
  } catch (e) {
    if (e.status !== 401) renderLogin('Cannot reach the API: ' + e.message);
    return;
  }
  document.getElementById('who').textContent = me.role + (me.institution_id ? ' · ' + short(me.institution_id) : '');
  document.getElementById('logout').hidden = false;
  route();
  startStream();
}

// A login link: #token=… is stored and taken out of the address bar.
function takeToken() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (!m) return false;
  localStorage.setItem('lote.token', decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + '#/');
  return true;
}

window.addEventListener('hashchange', () => { if (takeToken()) start(); else route(); });
window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', () => logout());
  takeToken();
  if (token()) start(); else renderLogin();
});

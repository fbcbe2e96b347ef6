// The VeloFlux dashboard: polls the admin API of this node (or, through /admin/peers/NODE/,
// of a peer) and renders what it answers. Everything from the API is written as text, never
// as HTML: node names, backend IDs and reasons come from the cluster and from Consul.
'use strict';

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

const state = {
  view: '',      // '' for this node, else the name of the peer whose view is shown
  self: '',      // this node's name in the cluster
  prev: null,    // {view, stats}: the last stats reading, for rates
  timer: 0,
  confirmAction: null,
  errorFrom: '', // 'poll' or 'action': what the banner reports
};

function base() {
  return state.view ? '/admin/peers/' + encodeURIComponent(state.view) + '/' : '/admin/';
}

async function api(path, method) {
  const r = await fetch(path, {
    method: method || 'GET',
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  });
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON: the status says enough */ }
  if (!r.ok) {
    throw new Error(path + ': ' + ((body && body.error) || r.status + ' ' + r.statusText));
  }
  return body;
}

// el builds an element: attrs are attributes (class, data-*), kids are nodes or text.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

// morph makes the node cur look like next, touching only what differs, so that a refresh
// leaves alone the elements the operator is pointing at (a button half-way through a click).
function morph(cur, next) {
  if (cur.isEqualNode(next)) return;
  if (cur.nodeType !== next.nodeType || cur.nodeName !== next.nodeName) {
    cur.replaceWith(next);
    return;
  }
  if (cur.nodeType !== Node.ELEMENT_NODE) {
    cur.nodeValue = next.nodeValue;
    return;
  }
  for (const a of Array.from(cur.attributes)) {
    if (!next.hasAttribute(a.name)) cur.removeAttribute(a.name);
  }
  for (const a of Array.from(next.attributes)) {
    if (cur.getAttribute(a.name) !== a.value) cur.setAttribute(a.name, a.value);
  }
  morphChildren(cur, Array.from(next.childNodes));
}

function morphChildren(parent, kids) {
  const cur = Array.from(parent.childNodes);
  kids.forEach((k, i) => (i < cur.length ? morph(cur[i], k) : parent.append(k)));
  for (let i = kids.length; i < cur.length; i++) cur[i].remove();
}

// put sets the children of target to kids (nodes or text).
function put(target, ...kids) {
  morphChildren(target, kids.flat().map((k) => (k instanceof Node ? k : document.createTextNode(String(k)))));
}

function fill(tbody, rows) {
  put(tbody, rows);
}

function dl(target, pairs) {
  const out = [];
  for (const [k, v] of pairs) out.push(el('dt', null, k), el('dd', null, v));
  put(target, out);
}

function verdict(ok, yes, no) {
  return el('span', { class: ok ? 'up' : 'down' }, ok ? yes : no);
}

function duration(sec) {
  if (!isFinite(sec)) return '–';
  sec = Math.max(0, Math.round(sec));
  const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600), m = Math.floor(sec % 3600 / 60), s = sec % 60;
  if (d) return d + 'd ' + h + 'h';
  if (h) return h + 'h ' + m + 'm';
  if (m) return m + 'm ' + s + 's';
  return s + 's';
}

function ms(sec) {
  if (sec === null || !isFinite(sec)) return '–';
  return sec < 0.01 ? (sec * 1000).toFixed(2) + ' ms' : sec < 1 ? (sec * 1000).toFixed(0) + ' ms' : sec.toFixed(2) + ' s';
}

function ago(t) {
  const d = (Date.now() - Date.parse(t)) / 1000;
  return isFinite(d) ? duration(d) + ' ago' : '';
}

// quantile estimates the q-quantile of the requests counted between two readings of the
// latency histogram, interpolating within a bucket as Prometheus' histogram_quantile does.
function quantile(q, cur, prev) {
  const total = cur.count - (prev ? prev.count : 0);
  if (total <= 0) return null;
  const before = new Map((prev ? prev.buckets : []).map((b) => [b.le, b.count]));
  const rank = q * total;
  let lo = 0, below = 0;
  for (const b of cur.buckets) {
    const n = b.count - (before.get(b.le) || 0);
    if (n >= rank) return lo + (b.le - lo) * (n > below ? (rank - below) / (n - below) : 1);
    lo = b.le; below = n;
  }
  return Infinity; // above the largest bucket
}

function ask(text, action) {
  $('confirm-text').textContent = text;
  state.confirmAction = action;
  $('confirm').hidden = false;
  $('confirm-yes').focus();
}

async function act(path, what) {
  try {
    await api(path, 'POST');
    showError('', 'action');
  } catch (e) {
    showError(what + ' failed: ' + e.message, 'action');
  }
  poll();
}

// showError shows msg in the banner, or clears it when msg is empty and the banner holds an
// error from the same source (a good poll does not hide a failed drain).
function showError(msg, from) {
  if (!msg && state.errorFrom !== from) return;
  state.errorFrom = msg ? from : '';
  $('error').textContent = msg;
  $('error').hidden = !msg;
}

function renderSummary(status) {
  const c = status.cluster;
  $('node-name').textContent = (c ? c.name + ' · ' : '') + 'veloflux ' + status.version;
  const last = status.last_reload || {};
  const consul = status.consul;
  dl($('summary'), [
    ['Serving', status.draining ? el('span', { class: 'warn' }, 'draining') : el('span', { class: 'up' }, 'yes')],
    ['Up for', duration(status.uptime_seconds)],
    ['In flight', status.inflight],
    ['Routing table', 'version ' + status.table_version],
    ['Listeners', (status.listen_addresses || []).join(', ')],
    ['Health', status.health_targets + ' backends checked, ' + status.health_probed + ' probed here'],
    ['Last reload', last.ok ? el('span', null, 'ok, ', ago(last.at)) : el('span', { class: 'down' }, 'failed: ' + (last.error || ''))],
    ['Consul', consul ? (consul.datacenters || []).map((d) => d.name + ': ' + d.state + (d.last_error ? ' (' + d.last_error + ')' : '')).join(', ') || 'starting' : 'off'],
  ]);
}

function renderTraffic(stats, sessions) {
  const p = state.prev && state.prev.view === state.view ? state.prev.stats : null;
  const dt = p ? (Date.parse(stats.at) - Date.parse(p.at)) / 1000 : 0;
  const rate = (cur, old) => (p && dt > 0 ? ((cur - old) / dt).toFixed(1) + '/s' : '–');
  const errs = stats.by_class['5xx'] || 0, oldErrs = p ? p.by_class['5xx'] || 0 : 0;
  const n = p ? stats.requests - p.requests : 0;
  dl($('traffic'), [
    ['Requests', rate(stats.requests, p ? p.requests : 0)],
    ['Errors (5xx)', rate(errs, oldErrs)],
    ['Error ratio', p && n > 0 ? ((errs - oldErrs) / n * 100).toFixed(2) + ' %' : '–'],
    ['Latency p50 / p90 / p99', [0.5, 0.9, 0.99].map((q) => {
      const v = quantile(q, stats.latency, p ? p.latency : null);
      return v === Infinity ? '> 30 s' : ms(v);
    }).join(' / ')],
    ['Since start', stats.requests + ' requests, ' + errs + ' 5xx, ' + stats.retries + ' retries, ' + stats.rate_limited + ' rate-limited'],
    ['In flight', stats.inflight],
    ['Moved sessions', sessions.total + ' (' + sessions.scope + ')'],
  ]);
  state.prev = { view: state.view, stats };
}

function renderMembers(status) {
  const c = status.cluster;
  $('cluster-none').hidden = !!c;
  $('members').hidden = !c;
  const select = $('view');
  if (!c) {
    fill($('members').tBodies[0], []);
    return;
  }
  if (!state.view) state.self = c.name;
  const members = c.members.slice().sort((a, b) =>
    (a.Region || '').localeCompare(b.Region || '') || a.Name.localeCompare(b.Name));
  fill($('members').tBodies[0], members.map((m) => {
    const self = m.Name === state.self;
    const alive = m.State === 'alive';
    // Drains go through this node: its own API for itself, the forward for a peer.
    const prefix = self ? '/admin/' : '/admin/peers/' + encodeURIComponent(m.Name) + '/';
    const btn = alive ? el('button', { type: 'button', 'data-action': m.Draining ? 'undrain-node' : 'drain-node', 'data-node': m.Name, 'data-path': prefix },
      m.Draining ? 'Undrain node' : 'Drain node') : null;
    return el('tr', { 'data-member': m.Name },
      el('td', null, m.Region || '–'),
      el('td', null, m.Name, self ? el('span', { class: 'muted' }, ' (this node)') : null),
      el('td', null, m.Addr),
      el('td', null, verdict(alive, 'alive', m.State)),
      el('td', null, m.Draining ? el('span', { class: 'warn' }, 'draining') : alive ? el('span', { class: 'up' }, 'yes') : '–'),
      el('td', null, m.Version || ''),
      el('td', null, btn));
  }));
  // The view selector lists this node and its live peers; the choice survives refreshes.
  const names = members.filter((m) => m.State === 'alive' && m.Name !== state.self).map((m) => m.Name);
  const want = [''].concat(names);
  const have = Array.from(select.options).map((o) => o.value);
  if (!state.view && want.join('\n') !== have.join('\n')) {
    select.replaceChildren(el('option', { value: '' }, 'this node (' + state.self + ')'),
      ...names.map((n) => el('option', { value: n }, n)));
    select.value = state.view;
  }
}

function renderRoutes(routes, stats) {
  const byPool = new Map(stats.pools.map((p) => [p.pool, p]));
  fill($('routes').tBodies[0], routes.map((r) => {
    const s = byPool.get(r.Pool) || { requests: 0, errors: 0 };
    return el('tr', null,
      el('td', null, r.Host || '(default)'),
      el('td', null, r.PathPrefix || '/'),
      el('td', null, r.StripPrefix ? 'yes' : ''),
      el('td', null, r.Pool),
      el('td', null, r.Geo || ''),
      el('td', null, s.requests),
      el('td', null, s.errors));
  }));
}

function renderPools(pools, health, sessions) {
  const byID = new Map(health.map((h) => [h.backend, h]));
  const pins = new Map(sessions.by_backend.map((b) => [b.backend, b.pins]));
  put($('pools'), pools.map((p) => el('div', { 'data-pool': p.name },
    el('h3', null, p.name + ' ', el('span', { class: 'muted' },
      p.algorithm + (p.sticky_sessions ? ', sticky' : '') + ' · ' + p.healthy_backends + ' of ' + p.backends.length + ' up')),
    el('table', null,
      el('thead', null, el('tr', null, ['Backend', 'Region', 'Weight', 'Active', 'Verdict', 'Why out', 'Observers', 'Moved here', ''].map((h) => el('th', null, h)))),
      el('tbody', null, p.backends.map((b) => backendRow(b, byID.get(b.id), pins.get(b.id) || 0)))))));
}

function backendRow(b, h, pins) {
  h = h || { healthy: b.healthy, drained: false, observers: [], consensus: {} };
  let v;
  if (h.drained) v = el('span', { class: 'warn' }, 'drained');
  else if (h.ejected) v = el('span', { class: 'down' }, 'ejected');
  else v = verdict(h.healthy, 'up', 'down');
  const why = h.why || (b.last_error ? 'last check: ' + b.last_error : '');
  const observers = el('ul', { class: 'observers' }, (h.observers || []).map((o) =>
    el('li', null, el('span', { class: o.healthy ? 'up' : 'down' }, o.healthy ? '✓' : '✗'), ' ', o.node, ' ',
      el('span', { class: 'muted' }, o.source + (o.voting ? ', votes' : '') + (o.fresh ? '' : ', stale') + ', ' + ago(o.at) +
        (o.reason ? ': ' + o.reason : '')))));
  const btn = el('button', { type: 'button', 'data-action': h.drained ? 'undrain-backend' : 'drain-backend', 'data-backend': b.id },
    h.drained ? 'Undrain' : 'Drain');
  return el('tr', { 'data-backend': b.id },
    el('td', null, b.id, b.address !== b.id ? el('div', { class: 'muted' }, b.address) : null),
    el('td', null, b.region || ''),
    el('td', null, b.weight),
    el('td', null, b.active_connections),
    el('td', { class: 'verdict' }, v),
    el('td', null, why),
    el('td', null, observers),
    el('td', null, pins),
    el('td', null, btn));
}

function renderSessions(sessions) {
  $('sessions-total').textContent = sessions.total + ' moved sessions' +
    (sessions.scope === 'cluster' ? ', shared by the cluster' : ', on this node');
  fill($('sessions').tBodies[0], sessions.by_backend.map((b) => el('tr', null, el('td', null, b.backend), el('td', null, b.pins))));
}

function renderCerts(stats) {
  const certs = stats.certificates || [];
  $('certs-none').hidden = certs.length > 0;
  $('certs').hidden = certs.length === 0;
  fill($('certs').tBodies[0], certs.map((c) => {
    const left = (Date.parse(c.expires) - Date.now()) / 1000;
    return el('tr', null, el('td', null, c.cert_file), el('td', null, c.expires),
      el('td', null, el('span', { class: left < 14 * 86400 ? 'down' : 'up' }, left > 0 ? duration(left) : 'expired')));
  }));
}

async function poll() {
  clearTimeout(state.timer);
  const view = state.view;
  const b = base();
  try {
    const [status, health, pools, routes, stats, sessions] = await Promise.all(
      ['status', 'health', 'pools', 'routes', 'stats', 'sessions'].map((e) => api(b + e)));
    if (view !== state.view) return; // the operator switched views meanwhile
    renderSummary(status);
    renderMembers(status);
    renderTraffic(stats, sessions);
    renderRoutes(routes, stats);
    renderPools(pools, health, sessions);
    renderSessions(sessions);
    renderCerts(stats);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString() + (view ? ' · view of ' + view : '');
    document.body.dataset.updated = String(Date.now());
    showError('', 'poll');
  } catch (e) {
    showError('Cannot read ' + (view ? 'peer ' + view : 'this node') + ': ' + e.message, 'poll');
  } finally {
    state.timer = setTimeout(poll, POLL_MS);
  }
}

// onAction asks to confirm what a drain button does, then does it. One listener serves every
// button, since refreshes rebuild the rows.
function onAction(e) {
  const btn = e.target.closest('button[data-action]');
  if (!btn) return;
  const action = btn.dataset.action;
  if (action === 'drain-node' || action === 'undrain-node') {
    const node = btn.dataset.node, drain = action === 'drain-node';
    ask((drain ? 'Drain node ' + node + ': it answers 503 and leaves the load balancers?' : 'Serve again on node ' + node + '?'),
      () => act(btn.dataset.path + (drain ? 'drain' : 'undrain'), (drain ? 'drain ' : 'undrain ') + node));
  } else if (action === 'drain-backend' || action === 'undrain-backend') {
    const id = btn.dataset.backend, drain = action === 'drain-backend';
    // Backend drains are shared by the whole cluster, so this node's API applies them.
    ask((drain ? 'Drain backend ' : 'Undrain backend ') + id + ' on every node of the cluster?',
      () => act('/admin/backends/' + (drain ? 'drain' : 'undrain') + '?backend=' + encodeURIComponent(id), (drain ? 'drain ' : 'undrain ') + id));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('members').addEventListener('click', onAction);
  $('pools').addEventListener('click', onAction);
  $('view').addEventListener('change', (e) => {
    state.view = e.target.value;
    state.prev = null;
    poll();
  });
  $('confirm-yes').addEventListener('click', () => {
    const a = state.confirmAction;
    state.confirmAction = null;
    $('confirm').hidden = true;
    if (a) a();
  });
  $('confirm-no').addEventListener('click', () => {
    state.confirmAction = null;
    $('confirm').hidden = true;
  });
  poll();
});

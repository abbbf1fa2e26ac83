// The Weir dashboard: every second, read /admin/plugins, /admin/upstreams
// and /metrics, and render them. Rates are deltas between two polls of the
// counters; latency is the mean over the last poll (or since start) and a
// p50 interpolated in the histogram's buckets.
'use strict';
(() => {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  let previous = null; // the last metrics snapshot, for rates

  // ---- OpenMetrics text ----

  // Quoted label values may hold `}` and `,`, hence the careful pattern.
  const SAMPLE = /^([a-zA-Z_:][\w:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?\s+(\S+)/;
  const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

  function parseMetrics(text) {
    const samples = [];
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = SAMPLE.exec(line);
      if (!m) continue;
      const labels = {};
      for (const l of (m[2] || '').matchAll(LABEL)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
      samples.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return samples;
  }

  /** Histograms and counters grouped by `keyOf(labels)`. */
  function group(samples, base, keyOf) {
    const out = new Map();
    const get = (k) => {
      if (!out.has(k)) out.set(k, { count: 0, sum: 0, buckets: new Map() });
      return out.get(k);
    };
    for (const s of samples) {
      if (!s.name.startsWith(base)) continue;
      const g = get(keyOf(s.labels));
      const suffix = s.name.slice(base.length);
      if (suffix === '_count') g.count += s.value;
      else if (suffix === '_sum') g.sum += s.value;
      else if (suffix === '_bucket') {
        const le = Number(s.labels.le === '+Inf' ? Infinity : s.labels.le);
        g.buckets.set(le, (g.buckets.get(le) || 0) + s.value);
      }
    }
    return out;
  }

  function snapshot(samples) {
    const routes = new Map();
    let total = 0, errors = 0;
    for (const s of samples) {
      if (s.name !== 'weir_requests_total') continue;
      const r = routes.get(s.labels.route) || { requests: 0, errors: 0 };
      const bad = s.labels.status_class === '5xx' ? s.value : 0;
      r.requests += s.value; r.errors += bad;
      total += s.value; errors += bad;
      routes.set(s.labels.route, r);
    }
    const failures = new Map();
    for (const s of samples) {
      if (s.name !== 'weir_plugin_failures_total') continue;
      failures.set(s.labels.plugin, (failures.get(s.labels.plugin) || 0) + s.value);
    }
    return {
      t: performance.now(), total, errors, routes, failures,
      latency: group(samples, 'weir_request_duration_seconds', (l) => l.route),
      hooks: group(samples, 'weir_plugin_hook_duration_seconds', (l) => `${l.plugin}\u0000${l.hook}`),
    };
  }

  /** The median from cumulative buckets, interpolated within one. */
  function p50(h) {
    if (!h || !h.count) return null;
    const target = h.count / 2;
    let lower = 0, below = 0;
    for (const [le, cum] of [...h.buckets].sort((a, b) => a[0] - b[0])) {
      if (cum >= target) {
        if (le === Infinity) return lower;
        return lower + (le - lower) * ((target - below) / Math.max(cum - below, 1));
      }
      lower = le; below = cum;
    }
    return null;
  }

  // Since the last poll when there was traffic, else since start.
  const rate = (now, before, dt) => (before === undefined || now < before ? null : (now - before) / dt);
  function mean(h, old) {
    if (!h || !h.count) return null;
    if (old && h.count > old.count) return (h.sum - old.sum) / (h.count - old.count);
    return h.sum / h.count;
  }

  // ---- formatting and DOM ----

  const num = (n) => (n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en'));
  const perSec = (n) => (n === null ? '–' : n < 10 ? n.toFixed(1) : Math.round(n).toString());
  const pct = (part, whole) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '–');
  function secs(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    if (s < 0.001) return `${(s * 1e6).toFixed(0)} µs`;
    if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : 1)} ms`;
    return `${s.toFixed(2)} s`;
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

  function setText(id, text, cls) {
    const e = $(id);
    if (e.textContent !== text) e.textContent = text;
    if (cls !== undefined) e.className = cls;
  }

  /**
   * Render rows into a table body, reusing rows by key so that the DOM (and
   * a tooltip being hovered) stays put when nothing changed.
   * A row: {key, data: {attr: value}, cells: [text | {text, title, cls}]}.
   */
  function renderRows(table, rows, empty) {
    const body = $(table).tBodies[0];
    const old = new Map([...body.rows].map((tr) => [tr.dataset.key, tr]));
    const keep = [];
    for (const row of rows) {
      let tr = old.get(row.key);
      if (!tr) { tr = document.createElement('tr'); tr.dataset.key = row.key; }
      for (const [k, v] of Object.entries(row.data || {})) tr.dataset[k] = v;
      row.cells.forEach((c, i) => {
        const cell = typeof c === 'object' ? c : { text: String(c) };
        const td = tr.cells[i] || tr.insertCell();
        if (td.textContent !== cell.text) td.textContent = cell.text;
        if ((td.title || undefined) !== cell.title) td.title = cell.title || '';
        td.className = cell.cls || '';
      });
      keep.push(tr);
    }
    if (!rows.length) {
      const tr = document.createElement('tr');
      const td = tr.insertCell();
      td.colSpan = $(table).tHead.rows[0].cells.length; td.className = 'empty'; td.textContent = empty;
      keep.push(tr);
    }
    body.replaceChildren(...keep);
  }

  // ---- sections ----

  // Status with the plugin's governance: quarantine, canary share, rollback.
  function status(p) {
    const g = p.governance || {};
    const state = g.record && g.record.state !== 'serving' ? g.record.state : p.status;
    let text = state;
    if (g.canary) text += ` · canary ${Math.round(g.canary.share * 100)}% ${g.canary.state}`;
    if (g.canary_of) text += ` · canary of ${g.canary_of}`;
    return { text, cls: state === 'active' ? 'ok' : 'bad' };
  }

  function renderPipeline(data, metrics) {
    const rows = (data.plugins || []).map((p, i) => ({
      key: p.name || `error:${p.file}`,
      data: { plugin: p.name || '', status: p.status },
      cells: [
        i + 1,
        { text: p.name || '(not loaded)', cls: 'mono' },
        { text: p.file, title: p.config_file ? `config: ${p.config_file}` : undefined, cls: 'mono' },
        { text: p.sha256 ? p.sha256.slice(0, 12) : '–', title: p.sha256, cls: 'mono' },
        { text: when(p.loaded_at), title: p.loaded_at },
        status(p),
        p.contract || '–',
        (p.hooks || []).join(', ') || '–',
        { text: p.grants || '–', title: p.imports ? `imports: ${p.imports.join(', ') || 'none'}` : undefined },
        { text: metrics ? num(metrics.failures.get(p.name) || 0) : '–', cls: metrics && metrics.failures.get(p.name) ? 'bad' : '' },
        { text: p.last_error || '', cls: 'bad' },
      ],
    }));
    renderRows('pipeline', rows, 'no plugins loaded');
    const r = data.reload || {};
    setText('reload-attempts', String(r.attempts ?? '–'));
    setText('reload-last-attempt', when(r.last_attempt));
    setText('reload-last-success', when(r.last_success));
    const err = r.last_error;
    setText('reload-last-error', err ? `${err.file}: ${err.error}` : 'none', err ? 'bad' : 'ok');
  }

  function renderUpstreams(data) {
    const rows = [];
    for (const u of data.upstreams || []) {
      for (const t of u.targets) {
        const health = !t.healthy ? 'unhealthy' : t.available ? 'healthy' : 'ejected';
        rows.push({
          key: `${u.name}\u0000${t.address}`,
          data: { upstream: u.name, target: t.address, health },
          cells: [
            u.name,
            { text: t.address, cls: 'mono' },
            { text: health, cls: health === 'healthy' ? 'ok' : health === 'ejected' ? 'warn' : 'bad' },
            t.available ? 'yes' : 'no',
            t.in_flight,
          ],
        });
      }
    }
    renderRows('upstreams', rows, 'no upstreams configured');
  }

  function renderMetrics(now, before) {
    const dt = before ? (now.t - before.t) / 1000 : 0;
    const dTotal = before ? now.total - before.total : 0;
    setText('total-requests', num(now.total));
    setText('total-rate', before ? perSec(rate(now.total, before.total, dt)) : '–');
    setText('total-errors', dTotal > 0 ? pct(now.errors - before.errors, dTotal) : pct(now.errors, now.total));
    let sum = 0, count = 0;
    for (const h of now.latency.values()) { sum += h.sum; count += h.count; }
    setText('total-latency', count ? secs(sum / count) : '–');

    const routes = [...now.routes].sort((a, b) => b[1].requests - a[1].requests).map(([route, r]) => {
      const old = before && before.routes.get(route);
      const d = old ? r.requests - old.requests : 0;
      const h = now.latency.get(route);
      return {
        key: route,
        data: { route },
        cells: [
          { text: route === '-' ? '(none)' : route, cls: 'mono' },
          num(r.requests),
          old ? perSec(rate(r.requests, old.requests, dt)) : '–',
          { text: d > 0 ? pct(r.errors - old.errors, d) : pct(r.errors, r.requests), cls: r.errors ? 'bad' : '' },
          secs(mean(h, before && before.latency.get(route))),
          secs(p50(h)),
        ],
      };
    });
    renderRows('routes', routes, 'no requests yet');

    const byKey = (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const hooks = [...now.hooks].filter(([, h]) => h.count > 0).sort(byKey).map(([key, h]) => {
      const [plugin, hook] = key.split('\u0000');
      const old = before && before.hooks.get(key);
      return {
        key,
        data: { plugin, hook },
        cells: [
          { text: plugin, cls: 'mono' }, hook, num(h.count),
          old ? perSec(rate(h.count, old.count, dt)) : '–',
          secs(mean(h, old)), secs(p50(h)),
        ],
      };
    });
    renderRows('hooks', hooks, 'no hook calls yet');
  }

  function metricsOff(message) {
    setText('metrics-state', message, 'warn');
    for (const id of ['total-requests', 'total-rate', 'total-errors', 'total-latency']) setText(id, '–');
    renderRows('routes', [], 'metrics are off');
    renderRows('hooks', [], 'metrics are off');
  }

  // ---- polling ----

  async function get(path, as) {
    const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    if (r.status === 401) { location.reload(); throw new Error('signed out'); }
    if (!r.ok) return { status: r.status };
    return { status: r.status, body: await r[as]() };
  }

  async function poll() {
    const [plugins, upstreams, metrics] = await Promise.all([
      get('/admin/plugins', 'json'), get('/admin/upstreams', 'json'), get('/metrics', 'text'),
    ]);
    let current = null;
    if (metrics.body !== undefined) {
      current = snapshot(parseMetrics(metrics.body));
      setText('metrics-state', '');
      renderMetrics(current, previous);
    } else if (metrics.status === 404) {
      metricsOff('Metrics are off ([metrics] enabled = false): no rates or latency.');
    } else {
      metricsOff(`/metrics answered ${metrics.status}.`);
    }
    if (plugins.body) renderPipeline(plugins.body, current);
    if (upstreams.body) renderUpstreams(upstreams.body);
    previous = current;
    setText('status', `updated ${new Date().toLocaleTimeString()}`, 'muted');
  }

  async function tick() {
    try {
      await poll();
    } catch (e) {
      setText('status', `admin API unreachable (${e.message})`, 'bad');
    } finally {
      setTimeout(tick, POLL_MS);
    }
  }

  async function reload() {
    const button = $('reload');
    button.disabled = true;
    setText('reload-result', 'reloading…', 'muted');
    try {
      // The header proves this is the dashboard's own script (see /ui docs).
      const r = await fetch('/admin/reload', {
        method: 'POST', credentials: 'same-origin', headers: { 'x-weir-csrf': '1' },
      });
      const body = await r.json().catch(() => ({}));
      const at = new Date().toLocaleTimeString();
      if (r.ok) {
        setText('reload-result', `${at}: reloaded, ${(body.plugins || []).length} plugins`, 'ok');
      } else if (body.status === 'failed') {
        setText('reload-result', `${at}: reload failed, ${body.file}: ${body.error}`, 'bad');
      } else {
        setText('reload-result', `${at}: reload refused (${r.status}) ${body.error || ''}`, 'bad');
      }
    } catch (e) {
      setText('reload-result', `reload failed: ${e.message}`, 'bad');
    } finally {
      button.disabled = false;
    }
    // The new pipeline and reload status now, not at the next poll.
    const plugins = await get('/admin/plugins', 'json').catch(() => ({}));
    if (plugins.body) renderPipeline(plugins.body, previous);
  }

  $('reload').addEventListener('click', reload);
  tick();
})();

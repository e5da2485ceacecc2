namespace Broker.Server.Admin;

/// <summary>
/// The dashboard at <c>/admin</c>: plain HTML, one stylesheet and one script, all served from these strings (nothing
/// is fetched from elsewhere). The page holds no data: it asks for the API key, keeps it in sessionStorage and reads
/// <c>/api/stats</c> and <c>/api/sessions</c> every two seconds with it.
/// </summary>
internal static class AdminPage
{
    // Scripts and styles from this origin only, no framing (the page has buttons that end sessions).
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    public static IResult Serve(HttpContext context, string content, string contentType)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-cache";
        return Results.Content(content, contentType);
    }

    public const string Html = """
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Broker admin</title>
<link rel="stylesheet" href="/admin/admin.css">
</head>
<body>
<header>
  <h1>Broker <span>admin</span></h1>
  <div class="meta"><span id="node"></span> <span id="uptime"></span> <span id="updated"></span></div>
  <button id="forget" type="button" class="quiet" hidden>Forget key</button>
</header>
<main>
  <form id="login" hidden>
    <h2>API key</h2>
    <p>The dashboard reads the broker's HTTP API with the key configured as <code>Broker:Api:Key</code>.
       It is kept in this browser tab only (sessionStorage) and sent as <code>Authorization: Bearer</code>.</p>
    <input id="key" type="password" autocomplete="off" spellcheck="false" placeholder="Broker:Api:Key" aria-label="API key">
    <button id="key-submit" type="submit">Open</button>
    <p id="login-problem" class="problem" hidden></p>
  </form>

  <div id="dash" hidden>
    <p id="problem" class="problem" hidden></p>
    <p id="notice" class="notice" hidden></p>

    <section class="cards">
      <div class="card"><div class="label">Connections</div><div class="value" id="count-connections">–</div></div>
      <div class="card"><div class="label">Sessions connected</div><div class="value" id="count-sessions">–</div></div>
      <div class="card"><div class="label">Sessions away</div><div class="value" id="count-away">–</div></div>
      <div class="card"><div class="label">Users</div><div class="value" id="count-users">–</div></div>
      <div class="card"><div class="label">Destinations</div><div class="value" id="count-destinations">–</div></div>
      <div class="card"><div class="label">Published /s</div><div class="value" id="rate-published">–</div></div>
      <div class="card"><div class="label">Delivered /s</div><div class="value" id="rate-delivered">–</div></div>
      <div class="card"><div class="label">Messages published</div><div class="value" id="total-published">–</div></div>
      <div class="card"><div class="label">Dropped</div><div class="value" id="total-dropped">–</div></div>
      <div class="card"><div class="label">Errors sent</div><div class="value" id="total-errors">–</div></div>
    </section>

    <section>
      <h2>Message rates <small id="chart-span"></small></h2>
      <canvas id="chart" height="220" aria-label="messages per second over the last minutes"></canvas>
      <div class="legend">
        <span><i class="swatch published"></i>published /s</span>
        <span><i class="swatch delivered"></i>delivered /s</span>
        <span><i class="swatch dropped"></i>dropped /s</span>
      </div>
    </section>

    <section>
      <h2>Sessions <small>by user · connected or away (dropped, resumable with its token)</small></h2>
      <div id="sessions"></div>
    </section>

    <section>
      <h2>Destinations <small id="destinations-note"></small></h2>
      <table id="destinations">
        <thead><tr><th>destination</th><th>kind</th><th class="n">subscribers</th><th class="n">queue depth</th><th class="n">unacked</th><th class="n">history</th><th class="n">published</th></tr></thead>
        <tbody></tbody>
      </table>
    </section>

    <div class="columns">
      <section>
        <h2>Memory</h2>
        <table id="memory" class="pairs"><tbody></tbody></table>
        <h2>Broker</h2>
        <table id="broker" class="pairs"><tbody></tbody></table>
      </section>
      <section>
        <h2>Limits</h2>
        <table id="limits"><thead><tr><th>setting</th><th>ERROR names it</th><th class="n">value</th></tr></thead><tbody></tbody></table>
      </section>
    </div>
  </div>
</main>
<script src="/admin/admin.js"></script>
</body>
</html>
""";

    public const string Style = """
:root { --fg:#1d232b; --muted:#68707c; --line:#e3e6ea; --bg:#f6f7f9; --card:#fff; --accent:#2463eb; --ok:#16833a; --away:#b26a00; --bad:#c62828; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; align-items:baseline; gap:1.5em; padding:.8em 1.5em; background:#1d232b; color:#fff; }
header h1 { margin:0; font-size:1.25em; font-weight:600; }
header h1 span { font-weight:400; color:#aab3bf; }
header .meta { color:#aab3bf; font-size:.9em; flex:1; }
header .meta span + span::before { content:"· "; }
main { padding:1em 1.5em 2em; max-width:1200px; }
h2 { font-size:1.05em; margin:1.2em 0 .5em; }
h2 small { font-weight:400; color:var(--muted); margin-left:.5em; }
section { margin-bottom:1em; }
#login { max-width:34em; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:1em 1.5em 1.5em; margin-top:2em; }
#login input { width:22em; max-width:100%; padding:.45em .6em; font:inherit; border:1px solid #c5cad1; border-radius:5px; }
button { font:inherit; padding:.4em .9em; border-radius:5px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
button.quiet { background:transparent; border-color:#56606d; color:#dfe3e8; }
button.danger { background:#fff; border-color:var(--bad); color:var(--bad); padding:.2em .7em; }
button.danger:hover { background:var(--bad); color:#fff; }
button.small { padding:.05em .5em; font-size:.85em; }
.problem { color:var(--bad); }
.notice { background:#e8f1ff; border:1px solid #bcd3ff; padding:.5em .8em; border-radius:5px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(150px, 1fr)); gap:.6em; margin-top:1em; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.6em .8em; }
.card .label { color:var(--muted); font-size:.85em; }
.card .value { font-size:1.6em; font-weight:600; font-variant-numeric:tabular-nums; }
canvas { width:100%; height:220px; background:var(--card); border:1px solid var(--line); border-radius:8px; display:block; }
.legend { display:flex; gap:1.2em; color:var(--muted); font-size:.9em; margin-top:.3em; }
.swatch { display:inline-block; width:.9em; height:.9em; border-radius:2px; margin-right:.35em; vertical-align:-.1em; }
.swatch.published { background:#2463eb; } .swatch.delivered { background:#16833a; } .swatch.dropped { background:#c62828; }
table { width:100%; border-collapse:collapse; background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:.35em .7em; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:500; font-size:.85em; background:#fafbfc; }
tr:last-child td { border-bottom:0; }
.n { text-align:right; font-variant-numeric:tabular-nums; }
code, .mono { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.92em; }
.pairs td:first-child { color:var(--muted); width:45%; }
.columns { display:grid; grid-template-columns:1fr 1fr; gap:1.5em; }
@media (max-width: 800px) { .columns { grid-template-columns:1fr; } }
.user { background:var(--card); border:1px solid var(--line); border-radius:8px; margin-bottom:.7em; overflow:hidden; }
.user > .head { display:flex; align-items:center; gap:1em; padding:.5em .8em; background:#fafbfc; border-bottom:1px solid var(--line); }
.user > .head .name { font-weight:600; }
.user > .head .counts { color:var(--muted); flex:1; }
.user table { border:0; border-radius:0; }
.state { font-size:.85em; font-weight:600; padding:.05em .5em; border-radius:9px; }
.state.connected { color:var(--ok); background:#e6f4ea; }
.state.away { color:var(--away); background:#fff3e0; }
.subs span { display:inline-block; margin:0 .4em .1em 0; }
.subs .ack { color:var(--muted); font-size:.85em; }
.empty { color:var(--muted); padding:.6em .8em; }
""";

    public const string Script = """
'use strict';
const KEY_STORAGE = 'broker-admin-key';
const POLL_MS = 2000;
const $ = id => document.getElementById(id);
let key = sessionStorage.getItem(KEY_STORAGE);
let timer = null;
let lastStats = null;

class AuthError extends Error {}

// Builds an element; text always goes in as text (names come from clients), never as HTML.
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-') || k === 'title') e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: 'Bearer ' + key }, cache: 'no-store' });
  if (response.status === 401) throw new AuthError('the key was refused');
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || ('HTTP ' + response.status));
  return body;
}

const number = n => n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
const rate = n => n >= 100 ? Math.round(n).toLocaleString('en-US') : (Math.round(n * 10) / 10).toLocaleString('en-US');
function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}
function ago(iso, now) {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min ago';
  return Math.floor(s / 86400) + ' d ago';
}
function duration(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d > 0 ? d + 'd ' + h + 'h' : h > 0 ? h + 'h ' + m + 'm' : m + 'm ' + (s % 60) + 's';
}

function showLogin(problem) {
  stop();
  $('dash').hidden = true;
  $('forget').hidden = true;
  $('login').hidden = false;
  $('login-problem').hidden = !problem;
  $('login-problem').textContent = problem || '';
  $('key').focus();
}

function start() {
  $('login').hidden = true;
  $('dash').hidden = false;
  $('forget').hidden = false;
  refresh();
  timer = setInterval(refresh, POLL_MS);
}

function stop() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

async function refresh() {
  try {
    const [stats, sessions] = await Promise.all([api('GET', '/api/stats'), api('GET', '/api/sessions')]);
    lastStats = stats;
    render(stats, sessions);
    $('problem').hidden = true;
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof AuthError) {
      sessionStorage.removeItem(KEY_STORAGE);
      key = null;
      showLogin('The broker refused that key.');
    } else {
      $('problem').textContent = 'Cannot read the broker: ' + e.message;
      $('problem').hidden = false;
    }
  }
}

function render(stats, sessions) {
  const now = Date.parse(stats.at);
  $('node').textContent = 'node ' + stats.node;
  $('uptime').textContent = 'up ' + duration(now - Date.parse(stats.startedAt));
  $('count-connections').textContent = number(stats.connections);
  $('count-sessions').textContent = number(stats.sessions.connected);
  $('count-away').textContent = number(stats.sessions.away);
  $('count-users').textContent = number(stats.sessions.users);
  $('count-destinations').textContent = number(stats.destinations.total);
  const samples = stats.rates.samples;
  const latest = samples.length ? samples[samples.length - 1] : { published: 0, delivered: 0 };
  $('rate-published').textContent = rate(latest.published);
  $('rate-delivered').textContent = rate(latest.delivered);
  $('total-published').textContent = number(stats.messages.published);
  $('total-dropped').textContent = number(stats.messages.dropped);
  $('total-errors').textContent = number(stats.messages.errors);
  drawChart(stats);
  renderSessions(sessions, now);
  renderDestinations(stats.destinations);
  renderMemory(stats);
  renderLimits(stats.limits);
}

function drawChart(stats) {
  const canvas = $('chart');
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  // The ring's whole span once it is full; until then the time since the first sample, a minute at least.
  const samples = stats.rates.samples;
  const end = Date.parse(stats.at);
  const fullMs = stats.rates.capacity * stats.rates.intervalSeconds * 1000;
  const spanMs = Math.min(fullMs, Math.max(60000, samples.length ? Math.ceil((end - Date.parse(samples[0].at)) / 60000) * 60000 : 0));
  const begin = end - spanMs;
  $('chart-span').textContent = 'last ' + Math.round(spanMs / 60000) + ' min (up to ' + Math.round(fullMs / 60000) + '), per second, sampled every ' + stats.rates.intervalSeconds + ' s';
  // Delivered first, published dashed over it: with one subscriber per message the two lines coincide.
  const series = [['delivered', '#16833a', []], ['published', '#2463eb', [6, 4]], ['dropped', '#c62828', []]];
  let max = 0;
  for (const s of samples) for (const [name] of series) max = Math.max(max, s[name]);
  max = niceCeiling(Math.max(max, 1));

  const left = 56, right = 12, top = 12, bottom = 26;
  const plotW = width - left - right, plotH = height - top - bottom;
  const x = t => left + (t - begin) / spanMs * plotW;
  const y = v => top + plotH - v / max * plotH;

  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#68707c';
  g.strokeStyle = '#e3e6ea';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4, py = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(left, py); g.lineTo(width - right, py); g.stroke();
    g.fillText(rate(v), left - 8, py);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  const minutes = Math.round(spanMs / 60000);
  for (let m = 0; m <= minutes; m++) {
    const px = Math.round(x(end - m * 60000)) + 0.5;
    g.beginPath(); g.moveTo(px, top); g.lineTo(px, top + plotH); g.stroke();
    g.fillText(m === 0 ? 'now' : '−' + m + ' min', px, top + plotH + 7);
  }

  if (samples.length === 0) {
    g.textAlign = 'center'; g.textBaseline = 'middle';
    g.fillText('collecting samples…', left + plotW / 2, top + plotH / 2);
    return;
  }
  g.lineWidth = 2;
  g.lineJoin = 'round';
  for (const [name, color, dash] of series) {
    g.strokeStyle = color;
    g.setLineDash(dash);
    g.beginPath();
    samples.forEach((s, i) => {
      const px = Math.max(left, x(Date.parse(s.at))), py = y(s[name]);
      if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
    });
    g.stroke();
  }
}

function niceCeiling(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function renderSessions(response, now) {
  const groups = new Map();
  for (const s of response.sessions) {
    const user = s.user === null ? null : s.user;
    if (!groups.has(user)) groups.set(user, []);
    groups.get(user).push(s);
  }
  const container = $('sessions');
  const parts = [];
  if (groups.size === 0) parts.push(el('div', { class: 'empty', text: 'No sessions on this node.' }));
  for (const [user, list] of groups) {
    const connected = list.filter(s => s.connected).length;
    const head = el('div', { class: 'head' },
      el('span', { class: 'name', text: user === null ? '(anonymous)' : user }),
      el('span', { class: 'counts', text: connected + ' connected · ' + (list.length - connected) + ' away' }));
    if (user !== null) {
      head.append(el('button', { type: 'button', class: 'danger', 'data-end-user': user, text: 'End sessions', onclick: () => endUser(user) }));
    }
    const rows = list.map(s => el('tr', { 'data-session': s.id },
      el('td', {}, el('span', { class: 'mono', title: s.id, text: s.id.slice(0, 12) })),
      el('td', {}, el('span', { class: 'state ' + (s.connected ? 'connected' : 'away'), text: s.connected ? 'connected' : 'away' })),
      el('td', { class: 'mono', text: s.node || '–' }),
      el('td', { class: 'subs' }, ...(s.subscriptions.length ? s.subscriptions.map(sub =>
        el('span', { title: 'id ' + sub.id }, el('code', { text: sub.destination }), ' ', el('span', { class: 'ack', text: sub.ack }))) : ['–'])),
      el('td', { text: s.connectedAt ? 'connected ' + ago(s.connectedAt, now) : s.lastSeenAt ? 'last seen ' + ago(s.lastSeenAt, now) : '–' }),
      el('td', { text: s.createdAt ? 'since ' + ago(s.createdAt, now) : '–' }),
      el('td', {}, el('button', { type: 'button', class: 'danger small', 'data-end-session': s.id, text: 'end', title: 'end this session', onclick: () => endSession(s.id) }))));
    const table = el('table', {},
      el('thead', {}, el('tr', {}, ...['session', 'state', 'node', 'subscriptions', 'connection', 'session age', ''].map(t => el('th', { text: t })))),
      el('tbody', {}, ...rows));
    parts.push(el('div', { class: 'user', 'data-user': user === null ? '' : user }, head, table));
  }
  if (response.truncated) parts.push(el('div', { class: 'empty', text: 'Showing ' + response.sessions.length + ' of ' + response.total + ' sessions.' }));
  container.replaceChildren(...parts);
}

function renderDestinations(d) {
  $('destinations-note').textContent = (d.source === 'broker' ? 'from the in-process broker' : 'subscriber counts from this node\u2019s sessions') +
    (d.truncated ? ' · top ' + d.items.length + ' of ' + d.total : '');
  const body = $('destinations').tBodies[0];
  const rows = d.items.map(x => el('tr', { 'data-destination': x.destination },
    el('td', {}, el('code', { text: x.destination })),
    el('td', { text: x.kind }),
    el('td', { class: 'n', text: number(x.subscribers) }),
    el('td', { class: 'n', text: number(x.queueDepth) }),
    el('td', { class: 'n', text: number(x.unacked) }),
    el('td', { class: 'n', text: number(x.history) }),
    el('td', { class: 'n', text: number(x.published) })));
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { class: 'empty', colSpan: 7, text: 'No destinations.' })));
  body.replaceChildren(...rows);
}

function pairs(table, entries) {
  table.tBodies[0].replaceChildren(...entries.map(([k, v]) => el('tr', {}, el('td', { text: k }), el('td', { text: v }))));
}

function renderMemory(stats) {
  const m = stats.memory, b = stats.broker, t = stats.messages;
  pairs($('memory'), [
    ['process working set', bytes(m.workingSetBytes)],
    ['GC heap', bytes(m.gcHeapBytes)],
    ['GC committed', bytes(m.gcCommittedBytes)],
    ['managed objects', bytes(m.managedBytes)],
    ['collections (gen 0 / 1 / 2)', m.gen0Collections + ' / ' + m.gen1Collections + ' / ' + m.gen2Collections],
  ]);
  pairs($('broker'), [
    ['broker', b.kind],
    ['durable sessions', b.durableSessions ? 'on' : 'off (no session store)'],
    ['messages waiting in queues', number(b.queuedMessages)],
    ['session writes waiting for the store', number(b.storeBacklog)],
    ...b.links.map(l => ['link ' + l.link + (l.index !== null ? ' ' + l.index : ''), l.up ? 'up' : 'DOWN']),
    ['delivered (total)', number(t.delivered)],
    ['resumed (recovered / not)', number(t.resumedRecovered) + ' / ' + number(t.resumedNotRecovered)],
    ['limits exceeded', number(t.limitsExceeded)],
  ]);
}

function renderLimits(limits) {
  $('limits').tBodies[0].replaceChildren(...limits.map(l => el('tr', {},
    el('td', {}, el('code', { text: l.setting })),
    el('td', { class: 'mono', text: l.limit || '' }),
    el('td', { class: 'n', text: l.unit === 'bytes' ? bytes(Number(l.value)) : l.unit === 'time' ? l.value : number(Number(l.value)) }))));
}

async function endUser(user) {
  if (!confirm('End every session of ' + user + '?\n\nEach connection gets an ERROR and closes, and the session tokens stop resuming.')) return;
  try {
    const r = await api('DELETE', '/api/users/' + encodeURIComponent(user) + '/sessions');
    notice('Ended the sessions of ' + r.user + ': ' + r.ended + ' session(s), connected and away.');
  } catch (e) {
    notice('Could not end the sessions of ' + user + ': ' + e.message);
  }
  refresh();
}

async function endSession(id) {
  if (!confirm('End session ' + id + '?')) return;
  try {
    await api('DELETE', '/api/sessions/' + encodeURIComponent(id));
    notice('Ended session ' + id + '.');
  } catch (e) {
    notice('Could not end session ' + id + ': ' + e.message);
  }
  refresh();
}

$('login').addEventListener('submit', e => {
  e.preventDefault();
  const value = $('key').value.trim();
  if (!value) return;
  key = value;
  sessionStorage.setItem(KEY_STORAGE, key);
  $('key').value = '';
  start();
});
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  key = null;
  showLogin('');
});
window.addEventListener('resize', () => { if (lastStats) drawChart(lastStats); });
if (key) start(); else showLogin('');
""";
}

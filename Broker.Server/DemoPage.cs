using System.Text.Json;

namespace Broker.Server;

/// <summary>
/// The demo at <c>/</c>: a self-contained page (no library, nothing fetched from elsewhere) that speaks STOMP 1.2
/// over the browser's WebSocket and shows what is special here, durable sessions. It keeps the session token from
/// CONNECTED in localStorage and sends it in the next CONNECT; "Drop connection" closes the WebSocket without a
/// DISCONNECT; a second connection publishes meanwhile; the reconnect shows <c>resumed</c> and <c>recovered</c>
/// and the messages that were missed arriving (those before the receipt of the re-sent SUBSCRIBE).
/// </summary>
internal static class DemoPage
{
    public static string Html(string path) => Page.Replace("\"__WS_PATH__\"", JsonSerializer.Serialize(path), StringComparison.Ordinal);

    private const string Page = """
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Broker · durable sessions demo</title>
<style>
body { font:14px/1.45 system-ui, sans-serif; margin:1.5em 2em; max-width:60em; color:#1d232b; }
h1 { margin:0 0 .2em; font-size:1.5em; }
h2 { font-size:1.05em; margin:0 0 .5em; }
fieldset { border:1px solid #e3e6ea; border-radius:8px; padding:.8em 1em; margin:0 0 1em; }
legend { font-weight:600; padding:0 .3em; }
input { font:inherit; padding:.3em .5em; border:1px solid #c5cad1; border-radius:4px; width:14em; }
input.short { width:8em; }
button { font:inherit; padding:.3em .8em; border-radius:4px; border:1px solid #2463eb; background:#2463eb; color:#fff; cursor:pointer; }
button.secondary { background:#fff; color:#2463eb; }
button.danger { background:#fff; color:#c62828; border-color:#c62828; }
button:disabled { opacity:.45; cursor:default; }
code { font-family:ui-monospace, Menlo, monospace; font-size:.92em; }
.grid { display:grid; grid-template-columns:max-content 1fr; gap:.2em 1em; margin-top:.6em; }
.grid span:nth-child(odd) { color:#68707c; }
.yes { color:#16833a; font-weight:600; } .no { color:#b26a00; font-weight:600; }
#status.connected { color:#16833a; font-weight:600; } #status.dropped, #status.closed { color:#b26a00; font-weight:600; }
#log { border:1px solid #e3e6ea; border-radius:8px; padding:.5em .8em; min-height:12em; max-height:28em; overflow:auto; font:12px/1.5 ui-monospace, Menlo, monospace; margin:0; list-style:none; }
#log li.missed { color:#7b3fb0; font-weight:600; }
#log li.out { color:#68707c; }
#log li.error { color:#c62828; }
.hint { color:#68707c; margin:.3em 0 0; }
</style>
</head>
<body>
<h1>Broker</h1>
<p>STOMP 1.2 over WebSocket at <code id="url"></code>, spoken by this page with no library.
What is special here: <b>durable sessions</b>. Subscribe, <b>drop the connection</b>, publish from the second
connection while this one is away, then <b>reconnect</b>: CONNECTED says <code>resumed:true</code> and
<code>recovered:true</code>, the subscription is back, and the messages it missed arrive, once and in order.</p>

<fieldset>
  <legend>Connection</legend>
  <label>login <input id="login" class="short" autocomplete="username"></label>
  <label>passcode <input id="passcode" class="short" type="password" autocomplete="current-password"></label>
  <span class="hint">(only if users are configured)</span>
  <p>
    <button id="connect" type="button">Connect</button>
    <button id="drop" type="button" class="secondary" disabled>Drop connection</button>
    <button id="disconnect" type="button" class="danger" disabled>Disconnect (end the session)</button>
    <button id="forget" type="button" class="secondary">Forget token</button>
  </p>
  <div class="grid">
    <span>status</span><span id="status">disconnected</span>
    <span>session</span><code id="session-id">–</code>
    <span>session token</span><span><code id="token">none</code> <span class="hint">kept in localStorage, sent as <code>session-token</code> in CONNECT</span></span>
    <span>resumed</span><span id="resumed">–</span>
    <span>recovered</span><span id="recovered">–</span>
    <span>missed messages delivered</span><span id="missed-count">–</span>
  </div>
</fieldset>

<fieldset>
  <legend>Subscribe</legend>
  <input id="dest" value="/topic/demo"> <button id="subscribe" type="button" disabled>Subscribe</button>
  <span class="hint">subscriptions: <span id="subscriptions">none</span></span>
  <p>
    <input id="text" value="hello"> <button id="send" type="button" disabled>Send on this connection</button>
  </p>
</fieldset>

<fieldset>
  <legend>Publisher (a second connection)</legend>
  <input id="pub-dest" value="/topic/demo"> <input id="pub-text" value="message 1">
  <button id="pub-send" type="button">Publish</button>
  <span class="hint">its own WebSocket, so it keeps publishing while the connection above is dropped · <span id="pub-status">not connected</span></span>
</fieldset>

<ol id="log"></ol>

<script>
'use strict';
const WS_PATH = "__WS_PATH__";
const TOKEN_KEY = 'broker-demo-session-token';
const SUBS_KEY = 'broker-demo-subscriptions';
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + WS_PATH;
const $ = id => document.getElementById(id);
$('url').textContent = url;

// STOMP 1.2 "Value Encoding": \\ \n \r \c in header names and values.
const escape = s => String(s).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/:/g, '\\c');
const unescape = s => s.replace(/\\(.)/g, (_, c) => ({ n: '\n', r: '\r', c: ':', '\\': '\\' })[c] ?? c);
const frame = (command, headers, body = '') =>
  command + '\n' + Object.entries(headers).map(([k, v]) => escape(k) + ':' + escape(v)).join('\n') + '\n\n' + body + '\0';

// Splits what arrives into frames: a frame may span WebSocket messages, one message may hold several frames,
// and bare newlines between frames are heart-beats.
function frameReader(onFrame) {
  let pending = '';
  const decoder = new TextDecoder();
  return data => {
    pending += typeof data === 'string' ? data : decoder.decode(data);
    let end;
    while ((end = pending.indexOf('\0')) >= 0) {
      const text = pending.slice(0, end).replace(/^[\r\n]+/, '');
      pending = pending.slice(end + 1);
      if (!text) continue;
      const split = text.indexOf('\n\n');
      const head = (split < 0 ? text : text.slice(0, split)).split('\n').map(l => l.replace(/\r$/, ''));
      const headers = {};
      for (const line of head.slice(1)) {
        const colon = line.indexOf(':');
        const name = unescape(line.slice(0, colon));
        if (colon > 0 && !(name in headers)) headers[name] = unescape(line.slice(colon + 1));
      }
      onFrame({ command: head[0], headers, body: split < 0 ? '' : text.slice(split + 2) });
    }
    pending = pending.replace(/^[\r\n]+/, '');
  };
}

function log(text, kind) {
  const li = document.createElement('li');
  li.textContent = new Date().toLocaleTimeString() + '  ' + text;
  if (kind) li.className = kind;
  $('log').append(li);
  $('log').scrollTop = $('log').scrollHeight;
}

function credentials() {
  const login = $('login').value.trim();
  return login ? { login, passcode: $('passcode').value } : {};
}

// ---- the durable connection --------------------------------------------------------------------
let ws = null;
let dropping = false;
let catchUpReceipt = null;
let missed = 0;
let receipts = 0;
let subscriptions = JSON.parse(localStorage.getItem(SUBS_KEY) || '[]');

function setStatus(text) {
  $('status').textContent = text;
  $('status').className = text.split(' ')[0];
  const open = text === 'connected';
  $('drop').disabled = $('disconnect').disabled = !(ws && ws.readyState === WebSocket.OPEN);
  $('subscribe').disabled = $('send').disabled = !open;
  $('connect').disabled = !!ws;
}

function showToken() {
  const token = localStorage.getItem(TOKEN_KEY);
  $('token').textContent = token ? token.slice(0, 10) + '…' : 'none';
}

function showSubscriptions() {
  $('subscriptions').textContent = subscriptions.length ? subscriptions.map(s => s.destination + ' (id ' + s.id + ')').join(', ') : 'none';
}

function yesNo(id, value) {
  $(id).textContent = value === undefined ? '–' : value;
  $(id).className = value === 'true' ? 'yes' : value === 'false' ? 'no' : '';
}

function connect() {
  if (ws) return;
  dropping = false;
  ws = new WebSocket(url, ['v12.stomp']);
  ws.binaryType = 'arraybuffer';
  setStatus('connecting');
  const read = frameReader(onFrame);
  ws.onopen = () => {
    const headers = { 'accept-version': '1.2', host: location.hostname, 'heart-beat': '0,0', ...credentials() };
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers['session-token'] = token;
    ws.send(frame('CONNECT', headers));
    log('→ CONNECT' + (token ? ' with session-token ' + token.slice(0, 10) + '…' : ' (no token yet)'), 'out');
    setStatus('connecting');
  };
  ws.onmessage = e => read(e.data);
  ws.onclose = () => {
    ws = null;
    catchUpReceipt = null;
    if (dropping) {
      log('connection dropped (no DISCONNECT): the session stays resumable with its token');
      setStatus('dropped');
    } else {
      log('connection closed');
      setStatus('closed');
    }
  };
}

function onFrame(f) {
  switch (f.command) {
    case 'CONNECTED': {
      const h = f.headers;
      if (h['session-token']) localStorage.setItem(TOKEN_KEY, h['session-token']);
      showToken();
      $('session-id').textContent = h.session || '–';
      yesNo('resumed', h.resumed);
      yesNo('recovered', h.recovered);
      log('CONNECTED session:' + h.session + (h.resumed !== undefined ? ' resumed:' + h.resumed + ' recovered:' + h.recovered : ' (durable sessions are off: no token)'));
      setStatus('connected');
      // Re-send SUBSCRIBE with the same ids: on a resumed session they attach to the restored subscriptions (no
      // duplicate); on a fresh one they subscribe again. What arrives before the last one's receipt was missed.
      missed = 0;
      catchUpReceipt = h.resumed === 'true' && subscriptions.length ? 'catch-up-' + (++receipts) : null;
      $('missed-count').textContent = catchUpReceipt ? '…' : h.resumed === 'true' ? '0' : '–';
      subscriptions.forEach((s, i) => ws.send(frame('SUBSCRIBE', { id: s.id, destination: s.destination, ack: 'auto',
        ...(i === subscriptions.length - 1 && catchUpReceipt ? { receipt: catchUpReceipt } : {}) })));
      break;
    }
    case 'MESSAGE':
      if (catchUpReceipt) {
        missed++;
        log('↺ missed while away: ' + f.headers.destination + ': ' + f.body, 'missed');
      } else {
        log('MESSAGE ' + f.headers.destination + ': ' + f.body);
      }
      break;
    case 'RECEIPT':
      if (f.headers['receipt-id'] === catchUpReceipt) {
        catchUpReceipt = null;
        $('missed-count').textContent = String(missed);
        log('caught up: ' + missed + ' missed message(s) delivered');
      } else {
        log('RECEIPT ' + f.headers['receipt-id']);
      }
      break;
    case 'ERROR':
      log('ERROR ' + (f.headers.message || '') + (f.body && f.body !== f.headers.message ? ': ' + f.body : ''), 'error');
      break;
    default:
      log(f.command);
  }
}

$('connect').onclick = connect;
$('drop').onclick = () => {
  if (!ws) return;
  dropping = true;
  ws.close();
};
$('disconnect').onclick = () => {
  if (!ws) return;
  ws.send(frame('DISCONNECT', { receipt: 'bye' }));
  log('→ DISCONNECT: the session ends for good; its token is forgotten', 'out');
  localStorage.removeItem(TOKEN_KEY);
  showToken();
};
$('forget').onclick = () => {
  localStorage.removeItem(TOKEN_KEY);
  showToken();
  log('token forgotten: the next CONNECT starts a fresh session');
};
$('subscribe').onclick = () => {
  const destination = $('dest').value.trim();
  if (!destination || subscriptions.some(s => s.destination === destination)) return;
  const s = { id: 'sub-' + Date.now().toString(36), destination };
  subscriptions.push(s);
  localStorage.setItem(SUBS_KEY, JSON.stringify(subscriptions));
  showSubscriptions();
  ws.send(frame('SUBSCRIBE', { id: s.id, destination, ack: 'auto', receipt: 'subscribed-' + s.id }));
  log('→ SUBSCRIBE ' + destination + ' (id ' + s.id + ')', 'out');
};
$('send').onclick = () => {
  ws.send(frame('SEND', { destination: $('dest').value.trim(), 'content-type': 'text/plain' }, $('text').value));
  log('→ SEND ' + $('dest').value.trim() + ': ' + $('text').value, 'out');
};

// ---- the publisher: a second connection ---------------------------------------------------------
let pub = null;
let pubReady = false;
const pubQueue = [];

function publisher() {
  if (pub) return;
  pub = new WebSocket(url, ['v12.stomp']);
  pubReady = false;
  $('pub-status').textContent = 'connecting';
  const read = frameReader(f => {
    if (f.command === 'CONNECTED') {
      pubReady = true;
      $('pub-status').textContent = 'connected';
      while (pubQueue.length) pub.send(pubQueue.shift());
    } else if (f.command === 'RECEIPT') {
      $('pub-status').textContent = 'published ' + f.headers['receipt-id'].replace(/^pub-/, '#');
    } else if (f.command === 'ERROR') {
      $('pub-status').textContent = 'ERROR ' + (f.headers.message || '');
    }
  });
  pub.onopen = () => pub.send(frame('CONNECT', { 'accept-version': '1.2', host: location.hostname, 'heart-beat': '0,0', ...credentials() }));
  pub.onmessage = e => read(e.data);
  pub.onclose = () => { pub = null; pubReady = false; $('pub-status').textContent = 'not connected'; };
}

let published = 0;
$('pub-send').onclick = () => {
  const destination = $('pub-dest').value.trim(), text = $('pub-text').value;
  const send = frame('SEND', { destination, 'content-type': 'text/plain', receipt: 'pub-' + (++published) }, text);
  publisher();
  if (pubReady) pub.send(send); else pubQueue.push(send);
  log('publisher → SEND ' + destination + ': ' + text, 'out');
  const n = /^(.*?)(\d+)$/.exec(text);
  if (n) $('pub-text').value = n[1] + (Number(n[2]) + 1);
};

showToken();
showSubscriptions();
connect();
</script>
</body>
</html>
""";
}

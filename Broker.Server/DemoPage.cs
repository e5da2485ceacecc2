namespace Broker.Server;

/// <summary>
/// A self-contained page that talks STOMP 1.2 over the browser's WebSocket (no script from
/// elsewhere): subscribe to a destination, send to it, watch the messages arrive.
/// </summary>
internal static class DemoPage
{
    public static string Html(string path) => """
<!doctype html>
<html><head><meta charset="utf-8"><title>Broker</title>
<style>body{font:14px system-ui;margin:2em;max-width:50em}input{width:18em}#log{white-space:pre-wrap;border:1px solid #ccc;padding:.5em;min-height:10em;font:12px monospace}</style>
</head><body>
<h1>Broker</h1>
<p>STOMP over WebSocket at <code id="url"></code></p>
<p>Destination <input id="dest" value="/topic/demo"> <button id="sub">Subscribe</button></p>
<p>Message <input id="text" value="hello"> <button id="send">Send</button></p>
<div id="log"></div>
<script>
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + 'PATH';
document.getElementById('url').textContent = url;
const log = t => { document.getElementById('log').textContent += t + '\n'; };
const ws = new WebSocket(url, ['v12.stomp']);
const frame = (cmd, headers, body = '') =>
  cmd + '\n' + Object.entries(headers).map(([k, v]) => k + ':' + v).join('\n') + '\n\n' + body + '\0';
let subs = 0;
ws.onopen = () => ws.send(frame('CONNECT', { 'accept-version': '1.2', host: location.hostname, 'heart-beat': '0,0' }));
ws.onmessage = e => {
  for (const f of String(e.data).split('\0')) {
    const t = f.replace(/^\n+/, '');
    if (!t) continue;
    const [head, ...rest] = t.split('\n\n');
    const lines = head.split('\n');
    log(lines[0] + (lines[0] === 'MESSAGE' ? ': ' + rest.join('\n\n') : ' ' + lines.slice(1).join(' ')));
  }
};
ws.onclose = () => log('connection closed');
document.getElementById('sub').onclick = () =>
  ws.send(frame('SUBSCRIBE', { id: 'sub-' + (++subs), destination: document.getElementById('dest').value }));
document.getElementById('send').onclick = () =>
  ws.send(frame('SEND', { destination: document.getElementById('dest').value, 'content-type': 'text/plain' }, document.getElementById('text').value));
</script>
</body></html>
""".Replace("PATH", path, StringComparison.Ordinal);
}

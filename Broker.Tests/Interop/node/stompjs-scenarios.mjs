// Interop scenarios for the broker driven by @stomp/stompjs (v7) over WebSocket (ws v8).
//
//   node stompjs-scenarios.mjs <ws-url> <scenario>
//
// Prints exactly one JSON line on stdout: {"ok":true,...} (exit 0) or {"ok":false,"error":"..."}
// (exit 1). The recent stomp.js debug log goes to stderr on failure (all of it, live, when
// STOMP_DEBUG=1). Every scenario has its own overall timeout so a run can never hang.
// Destinations carry a random suffix so runs may go in parallel against one broker.

import { randomBytes } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

// Node 20 has no global WebSocket; stomp.js only touches the global when given a brokerURL,
// but set it anyway so nothing in the library can trip over its absence.
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = WebSocket;
}

const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];
const STEP_TIMEOUT_MS = 10_000;
const DEFAULT_SCENARIO_TIMEOUT_MS = 20_000;
const LIVE_DEBUG = process.env.STOMP_DEBUG === '1';

const [, , url, scenarioName] = process.argv;
const runId = randomBytes(6).toString('hex');

// ---------------------------------------------------------------------------------------------
// Output and failure

const debugRing = [];
function debug(line) {
  const text = String(line);
  const short = text.length > 400 ? `${text.slice(0, 400)}… (${text.length} chars)` : text;
  if (LIVE_DEBUG) {
    process.stderr.write(`${new Date().toISOString()} ${short}\n`);
  }
  debugRing.push(short);
  if (debugRing.length > 80) {
    debugRing.shift();
  }
}

let finished = false;
function finish(result) {
  if (finished) {
    return;
  }
  finished = true;
  process.stdout.write(`${JSON.stringify({ ok: true, scenario: scenarioName, ...result })}\n`, () => process.exit(0));
}

function fail(error) {
  if (finished) {
    return;
  }
  finished = true;
  const message = error instanceof Error ? error.message : String(error);
  if (!LIVE_DEBUG && debugRing.length > 0) {
    process.stderr.write(`--- last stomp.js debug lines ---\n${debugRing.join('\n')}\n`);
  }
  if (error instanceof Error && error.stack) {
    process.stderr.write(`${error.stack}\n`);
  }
  process.stdout.write(`${JSON.stringify({ ok: false, scenario: scenarioName, error: message })}\n`, () => process.exit(1));
}

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

function delay(ms) {
  return new Promise(resolve => setTimeout(resolve, ms));
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function unique(kind, name) {
  return `/${kind}/interop-${name}-${runId}`;
}

// ---------------------------------------------------------------------------------------------
// A queue of received messages that can be awaited with a timeout.

class Mailbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
    this.count = 0;
  }

  push(item) {
    this.count++;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(item);
    } else {
      this.items.push(item);
    }
  }

  next(ms = STEP_TIMEOUT_MS, what = `a message on ${this.name}`) {
    if (this.items.length > 0) {
      return Promise.resolve(this.items.shift());
    }
    let resolver;
    const promise = new Promise(resolve => {
      resolver = resolve;
      this.waiters.push(resolve);
    });
    return withTimeout(promise, ms, what).catch(err => {
      this.waiters = this.waiters.filter(w => w !== resolver);
      throw err;
    });
  }

  async take(n, ms = STEP_TIMEOUT_MS) {
    const out = [];
    for (let i = 0; i < n; i++) {
      out.push(await this.next(ms, `message ${i + 1} of ${n} on ${this.name}`));
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Connections

const openClients = new Set();

// Connects a stomp.js Client and resolves with { client, connected } once CONNECTED arrives.
// A STOMP ERROR or an unexpected close at any later point fails the whole scenario.
function connect(label, options = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      let isConnected = false;
      const client = new Client({
        webSocketFactory: () => new WebSocket(url, SUBPROTOCOLS),
        connectHeaders: { login: 'guest', passcode: 'guest' },
        reconnectDelay: 0,
        debug: line => debug(`[${label}] ${line}`),
        ...options,
      });
      client.closingOnPurpose = false;
      let lastSocketError = null;
      client.onConnect = frame => {
        isConnected = true;
        resolve({ client, connected: frame });
      };
      client.onStompError = frame => {
        const err = new Error(
          `[${label}] STOMP ERROR frame: message=${JSON.stringify(frame.headers.message)} body=${JSON.stringify(frame.body.slice(0, 300))}`,
        );
        if (isConnected) {
          fail(err);
        } else {
          reject(err);
        }
      };
      client.onWebSocketClose = evt => {
        openClients.delete(client);
        if (client.closingOnPurpose) {
          return;
        }
        const err = new Error(
          `[${label}] WebSocket closed unexpectedly (code ${evt?.code}, reason ${JSON.stringify(evt?.reason ?? '')})` +
            (isConnected ? '' : ' before CONNECTED') +
            (lastSocketError ? `; socket error: ${lastSocketError}` : ''),
        );
        if (isConnected) {
          fail(err);
        } else {
          reject(err);
        }
      };
      client.onWebSocketError = evt => {
        lastSocketError = evt?.message ?? evt?.error?.message ?? String(evt);
        debug(`[${label}] WebSocket error: ${lastSocketError}`);
      };
      openClients.add(client);
      client.activate();
    }),
    STEP_TIMEOUT_MS,
    `CONNECTED (${label})`,
  );
}

// DISCONNECT with a receipt, then wait for the socket to close.
async function disconnect(client) {
  client.closingOnPurpose = true;
  await withTimeout(client.deactivate(), STEP_TIMEOUT_MS, 'disconnect');
  openClients.delete(client);
}

let receiptCounter = 0;
function nextReceiptId(what) {
  receiptCounter++;
  return `${what}-${runId}-${receiptCounter}`;
}

function awaitReceipt(client, receiptId) {
  return withTimeout(
    new Promise(resolve => client.watchForReceipt(receiptId, frame => resolve(frame))),
    STEP_TIMEOUT_MS,
    `RECEIPT ${receiptId}`,
  );
}

// SUBSCRIBE with a receipt so the subscription is known to be live before anything is sent.
async function subscribe(client, destination, headers = {}) {
  const mailbox = new Mailbox(destination);
  const receiptId = nextReceiptId('sub');
  const receipt = awaitReceipt(client, receiptId);
  const subscription = client.subscribe(destination, message => mailbox.push(message), { ...headers, receipt: receiptId });
  await receipt;
  return { mailbox, subscription };
}

// SEND with a receipt: resolves once the broker has the message.
async function publishConfirmed(client, params) {
  const receiptId = nextReceiptId('send');
  const receipt = awaitReceipt(client, receiptId);
  client.publish({ ...params, headers: { ...(params.headers ?? {}), receipt: receiptId } });
  await receipt;
}

function requireMessageHeaders(message, destination, subscriptionId) {
  const h = message.headers;
  check(h.destination === destination, `MESSAGE destination ${JSON.stringify(h.destination)} != ${JSON.stringify(destination)}`);
  check(typeof h['message-id'] === 'string' && h['message-id'].length > 0, 'MESSAGE has no message-id header');
  check(h.subscription === subscriptionId, `MESSAGE subscription ${JSON.stringify(h.subscription)} != ${JSON.stringify(subscriptionId)}`);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const scenarios = {
  async pubsub() {
    const destination = unique('topic', 'pubsub');
    const { client, connected } = await connect('pubsub');
    const { mailbox, subscription } = await subscribe(client, destination);
    const count = 10;
    for (let i = 0; i < count; i++) {
      client.publish({ destination, body: `message ${i}`, headers: { 'x-seq': String(i) } });
    }
    const messages = await mailbox.take(count);
    messages.forEach((m, i) => {
      check(m.headers['x-seq'] === String(i), `message ${i}: x-seq ${JSON.stringify(m.headers['x-seq'])} (out of order or header lost)`);
      check(m.body === `message ${i}`, `message ${i}: body ${JSON.stringify(m.body)}`);
      requireMessageHeaders(m, destination, subscription.id);
    });
    await disconnect(client);
    return {
      version: connected.headers.version,
      server: connected.headers.server ?? null,
      received: messages.length,
      messageHeaders: Object.keys(messages[0].headers).sort(),
    };
  },

  async receipt() {
    const destination = unique('topic', 'receipt');
    const { client, connected } = await connect('receipt');
    const receiptId = nextReceiptId('receipt');
    const receipt = awaitReceipt(client, receiptId);
    client.publish({ destination, body: 'with receipt', headers: { receipt: receiptId } });
    const frame = await receipt;
    check(frame.command === 'RECEIPT', `expected RECEIPT, got ${frame.command}`);
    check(frame.headers['receipt-id'] === receiptId, `receipt-id ${frame.headers['receipt-id']} != ${receiptId}`);
    await disconnect(client);
    return { version: connected.headers.version, receiptId: frame.headers['receipt-id'] };
  },

  async 'ack-client-individual'() {
    const destination = unique('queue', 'ack-ci');
    const { client, connected } = await connect('consumer');
    const { mailbox, subscription } = await subscribe(client, destination, { ack: 'client-individual' });
    const count = 3;
    for (let i = 0; i < count; i++) {
      client.publish({ destination, body: `m${i}`, headers: { 'x-seq': String(i) } });
    }

    let deliveries = 0;
    let nacked = 0;
    let redeliveredFlag = null;
    const acked = new Set();
    const seenFirst = new Map();
    let lastAckReceipt = null;
    while (acked.size < count) {
      const m = await mailbox.next(STEP_TIMEOUT_MS, `delivery ${deliveries + 1} (acked ${acked.size}/${count})`);
      deliveries++;
      requireMessageHeaders(m, destination, subscription.id);
      if (connected.headers.version === '1.2') {
        check(typeof m.headers.ack === 'string' && m.headers.ack.length > 0, 'MESSAGE in client-individual mode has no ack header (1.2)');
      }
      const seq = m.headers['x-seq'];
      seenFirst.set(seq, (seenFirst.get(seq) ?? 0) + 1);
      if (seq === '0' && nacked === 0) {
        m.nack();
        nacked++;
        continue;
      }
      if (seq === '0') {
        redeliveredFlag = m.headers.redelivered ?? null;
      }
      if (acked.size === count - 1) {
        lastAckReceipt = nextReceiptId('ack');
        const receipt = awaitReceipt(client, lastAckReceipt);
        m.ack({ receipt: lastAckReceipt });
        acked.add(seq);
        await receipt;
      } else {
        m.ack();
        acked.add(seq);
      }
    }
    check(seenFirst.get('0') === 2, `message 0 was delivered ${seenFirst.get('0')} time(s), expected 2 (NACK must redeliver)`);
    await disconnect(client);

    // Everything was acknowledged: a fresh consumer gets only what is sent now.
    const after = await connect('verifier');
    const verify = await subscribe(after.client, destination, { ack: 'client-individual' });
    await publishConfirmed(after.client, { destination, body: 'sentinel', headers: { 'x-seq': 'sentinel' } });
    const first = await verify.mailbox.next(STEP_TIMEOUT_MS, 'the sentinel');
    check(first.headers['x-seq'] === 'sentinel', `acked message ${first.headers['x-seq']} was delivered again`);
    first.ack();
    await delay(300);
    check(verify.mailbox.items.length === 0, `${verify.mailbox.items.length} unexpected message(s) after the sentinel`);
    await disconnect(after.client);
    return { version: connected.headers.version, deliveries, nacked, acked: acked.size, redeliveredHeader: redeliveredFlag };
  },

  async 'ack-client'() {
    const destination = unique('queue', 'ack-c');
    const { client, connected } = await connect('consumer');
    const { mailbox, subscription } = await subscribe(client, destination, { ack: 'client' });
    const count = 5;
    for (let i = 0; i < count; i++) {
      client.publish({ destination, body: `m${i}`, headers: { 'x-seq': String(i) } });
    }
    const messages = await mailbox.take(count);
    messages.forEach((m, i) => {
      requireMessageHeaders(m, destination, subscription.id);
      check(m.headers['x-seq'] === String(i), `delivery ${i} has x-seq ${m.headers['x-seq']}`);
    });
    // Cumulative: acknowledging the last one acknowledges all five.
    const receiptId = nextReceiptId('ack');
    const receipt = awaitReceipt(client, receiptId);
    messages[count - 1].ack({ receipt: receiptId });
    await receipt;
    await disconnect(client);

    const after = await connect('verifier');
    const verify = await subscribe(after.client, destination, { ack: 'client' });
    await publishConfirmed(after.client, { destination, body: 'sentinel', headers: { 'x-seq': 'sentinel' } });
    const first = await verify.mailbox.next(STEP_TIMEOUT_MS, 'the sentinel');
    check(first.headers['x-seq'] === 'sentinel', `message ${first.headers['x-seq']} was redelivered after a cumulative ACK`);
    first.ack();
    await delay(300);
    check(verify.mailbox.items.length === 0, `${verify.mailbox.items.length} unexpected message(s) after the sentinel`);
    await disconnect(after.client);
    return { version: connected.headers.version, received: messages.length, ackedWith: 'last', redeliveredAfterReconnect: 0 };
  },

  async transaction() {
    const destination = unique('topic', 'tx');
    const { client, connected } = await connect('tx');
    const { mailbox } = await subscribe(client, destination);

    const committed = client.begin();
    for (let i = 0; i < 3; i++) {
      client.publish({ destination, body: `commit-${i}`, headers: { transaction: committed.id } });
    }
    const aborted = client.begin();
    for (let i = 0; i < 2; i++) {
      client.publish({ destination, body: `abort-${i}`, headers: { transaction: aborted.id } });
    }
    // Sent outside any transaction while both are open: it must arrive before anything transacted.
    client.publish({ destination, body: 'probe' });
    aborted.abort();
    committed.commit();
    await publishConfirmed(client, { destination, body: 'sentinel' });

    const bodies = (await mailbox.take(5)).map(m => m.body);
    const expected = ['probe', 'commit-0', 'commit-1', 'commit-2', 'sentinel'];
    check(JSON.stringify(bodies) === JSON.stringify(expected), `received ${JSON.stringify(bodies)}, expected ${JSON.stringify(expected)}`);
    await delay(200);
    check(mailbox.items.length === 0, `extra messages: ${JSON.stringify(mailbox.items.map(m => m.body))}`);
    await disconnect(client);
    return { version: connected.headers.version, received: bodies, committed: committed.id, aborted: aborted.id };
  },

  async heartbeat() {
    const destination = unique('topic', 'hb');
    let heartbeatsReceived = 0;
    let heartbeatLost = false;
    const { client, connected } = await connect('hb', {
      heartbeatIncoming: 200,
      heartbeatOutgoing: 200,
      onHeartbeatReceived: () => heartbeatsReceived++,
      onHeartbeatLost: () => {
        heartbeatLost = true;
      },
    });
    const hb = connected.headers['heart-beat'];
    check(typeof hb === 'string', 'CONNECTED has no heart-beat header');
    const [sx, sy] = hb.split(',').map(v => Number.parseInt(v, 10));
    check(sx > 0 && sy > 0, `CONNECTED heart-beat is ${JSON.stringify(hb)}: both sides must be non-zero`);

    const idleMs = 2000;
    await delay(idleMs);
    check(!heartbeatLost, 'stomp.js declared the server heart-beat lost');
    check(client.connected, 'no longer connected after 2 s idle');
    // Server-to-client beats come every max(sx, 200) ms; expect some when that fits the idle time.
    const serverEveryMs = Math.max(sx, 200);
    if (serverEveryMs * 1.5 < idleMs) {
      check(heartbeatsReceived > 0, `no heart-beat received from the server in ${idleMs} ms idle (expected one every ${serverEveryMs} ms)`);
    }

    const { mailbox } = await subscribe(client, destination);
    client.publish({ destination, body: 'still alive' });
    const m = await mailbox.next();
    check(m.body === 'still alive', `body ${JSON.stringify(m.body)}`);
    check(client.connected, 'disconnected after the round trip');
    await disconnect(client);
    return { version: connected.headers.version, serverHeartBeat: hb, heartbeatsReceived };
  },

  async binary() {
    const destination = unique('topic', 'bin');
    const { client, connected } = await connect('binary');
    const { mailbox } = await subscribe(client, destination);

    const bytes = new Uint8Array(256);
    for (let i = 0; i < 256; i++) {
      bytes[i] = i;
    }
    client.publish({ destination, binaryBody: bytes, headers: { 'content-type': 'application/octet-stream' } });
    const bin = await mailbox.next(STEP_TIMEOUT_MS, 'the binary message');
    const got = bin.binaryBody;
    check(got.length === 256, `binary body is ${got.length} bytes, expected 256`);
    for (let i = 0; i < 256; i++) {
      check(got[i] === i, `binary body byte ${i} is ${got[i]}`);
    }
    check(
      bin.headers['content-type'] === 'application/octet-stream',
      `content-type ${JSON.stringify(bin.headers['content-type'])}`,
    );
    check(bin.headers['content-length'] === '256', `MESSAGE content-length ${JSON.stringify(bin.headers['content-length'])}, expected "256"`);

    const text = 'héllo ✓ 日本';
    client.publish({ destination, body: text, headers: { 'content-type': 'text/plain;charset=utf-8' } });
    const t = await mailbox.next(STEP_TIMEOUT_MS, 'the UTF-8 text message');
    check(t.body === text, `text body ${JSON.stringify(t.body)} != ${JSON.stringify(text)}`);
    const utf8Length = Buffer.byteLength(text, 'utf8');
    check(t.binaryBody.length === utf8Length, `text body is ${t.binaryBody.length} bytes, expected ${utf8Length}`);

    await disconnect(client);
    return {
      version: connected.headers.version,
      binaryBytes: got.length,
      binaryContentLength: bin.headers['content-length'],
      textBytes: t.binaryBody.length,
      textContentLength: t.headers['content-length'] ?? null,
    };
  },

  async large() {
    const size = 1024 * 1024;
    const pattern = 'The quick brown fox jumps over the lazy dog 0123456789.\n';
    const body = pattern.repeat(Math.ceil(size / pattern.length)).slice(0, size - 8) + runId.slice(0, 8);
    check(body.length === size, 'test body has the wrong size');

    const result = {};
    for (const [variant, options] of [
      ['whole', {}],
      ['split', { splitLargeFrames: true, maxWebSocketChunkSize: 8 * 1024 }],
    ]) {
      const destination = unique('topic', `large-${variant}`);
      const { client, connected } = await connect(`large-${variant}`, options);
      const { mailbox } = await subscribe(client, destination);
      await publishConfirmed(client, { destination, body });
      const m = await mailbox.next(STEP_TIMEOUT_MS, `the 1 MiB message (${variant})`);
      check(m.body.length === body.length, `${variant}: received ${m.body.length} chars, expected ${body.length}`);
      check(m.body === body, `${variant}: body content differs`);
      await disconnect(client);
      result[variant] = { bytes: m.body.length, version: connected.headers.version };
    }
    return result;
  },

  // A stomp.js app that keeps its session token and re-subscribes in onConnect with a fixed id, as
  // apps do, across a forced reconnect: it gets the messages sent while it was away, none twice.
  async resume() {
    const destination = unique('topic', 'resume');
    const received = [];
    const connectedHeaders = [];
    let connectWaiter = null;
    const app = new Client({
      webSocketFactory: () => new WebSocket(url, SUBPROTOCOLS),
      connectHeaders: { login: 'guest', passcode: 'guest' },
      reconnectDelay: 200,
      debug: line => debug(`[app] ${line}`),
    });
    let closed = null;
    app.onWebSocketClose = () => closed?.();
    app.onStompError = frame => fail(new Error(`[app] STOMP ERROR ${frame.headers.message}`));
    app.onConnect = frame => {
      connectedHeaders.push(frame.headers);
      // Keep the token for the next CONNECT: this is all an app adds for durable sessions.
      app.connectHeaders = { ...app.connectHeaders, 'session-token': frame.headers['session-token'] };
      const receiptId = nextReceiptId('resume-sub');
      app.watchForReceipt(receiptId, () => connectWaiter?.());
      app.subscribe(destination, m => received.push(Number(m.body)), { id: 'feed', receipt: receiptId });
    };
    const connected = n =>
      withTimeout(new Promise(resolve => { connectWaiter = () => connectedHeaders.length >= n && resolve(); }), STEP_TIMEOUT_MS, `connection ${n}`);
    const firstConnect = connected(1);
    app.activate();
    await firstConnect;

    const { client: publisher } = await connect('resume-publisher');
    for (let i = 1; i <= 50; i++) {
      publisher.publish({ destination, body: String(i) });
    }
    await publishConfirmed(publisher, { destination, body: '51' });
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (received.length < 51 && Date.now() < deadline) {
      await delay(10);
    }
    check(received.length === 51, `before the drop: received ${received.length} of 51`);

    // Drop the socket without DISCONNECT; stomp.js reconnects on its own.
    const socketClosed = withTimeout(new Promise(resolve => { closed = resolve; }), STEP_TIMEOUT_MS, 'the forced close');
    const secondConnect = connected(2);
    app.forceDisconnect();
    await socketClosed;
    for (let i = 52; i <= 100; i++) {
      publisher.publish({ destination, body: String(i) });
    }
    await publishConfirmed(publisher, { destination, body: '101' });
    await secondConnect;
    const until = Date.now() + STEP_TIMEOUT_MS;
    while (received.length < 101 && Date.now() < until) {
      await delay(10);
    }
    await delay(200); // a duplicate would arrive right behind the last message
    const expected = Array.from({ length: 101 }, (_, i) => i + 1);
    check(JSON.stringify(received) === JSON.stringify(expected),
      `received ${received.length} messages, not 1..101 once each in order: ${JSON.stringify(received.slice(45, 60))}…`);
    const again = connectedHeaders[1];
    check(again.resumed === 'true', `second CONNECTED resumed=${again.resumed}`);
    check(again.recovered === 'true', `second CONNECTED recovered=${again.recovered}`);
    check(again.session === connectedHeaders[0].session, 'the session id changed');
    app.onWebSocketClose = () => {};
    await withTimeout(app.deactivate(), STEP_TIMEOUT_MS, 'app deactivate');
    await disconnect(publisher);
    return { received: received.length, resumed: again.resumed, recovered: again.recovered };
  },

  // Two sessions of guest subscribe to /user/queue/<name>; an anonymous client sends to
  // /user/guest/queue/<name>. Both guest sessions get it once, showing what they subscribed to.
  async 'user-destination'() {
    const name = `interop-inbox-${runId}`;
    const subscribed = `/user/queue/${name}`;
    const { client: first } = await connect('user-1');
    const { client: second } = await connect('user-2');
    const { client: sender } = await connect('user-sender', { connectHeaders: {} });
    const one = await subscribe(first, subscribed);
    const two = await subscribe(second, subscribed);
    const own = await subscribe(sender, subscribed);
    await publishConfirmed(sender, { destination: `/user/guest/queue/${name}`, body: 'for guest', headers: { 'x-from': 'anonymous' } });
    const messages = [await one.mailbox.next(), await two.mailbox.next()];
    messages.forEach((m, i) => {
      requireMessageHeaders(m, subscribed, [one, two][i].subscription.id);
      check(m.body === 'for guest' && m.headers['x-from'] === 'anonymous', `session ${i + 1}: ${JSON.stringify(m.body)}`);
    });
    check(messages[0].headers['message-id'] === messages[1].headers['message-id'], 'the two copies have different message ids');
    await delay(200); // a duplicate, or a copy for the sender, would arrive right behind
    check(one.mailbox.items.length === 0 && two.mailbox.items.length === 0, 'a guest session got the message twice');
    check(own.mailbox.count === 0, 'the anonymous sender got a copy');
    for (const client of [first, second, sender]) {
      await disconnect(client);
    }
    return { destination: messages[0].headers.destination, sessions: messages.length };
  },

  // The README's chat sample (Broker.Tests/Application/ChatSample.cs), served by ChatSampleInteropTests.
  async 'chat-sample'() {
    const http = url.replace(/^ws/, 'http').replace(/\/ws$/, '');
    const room = `interop-${runId}`;
    const { client: alice } = await connect('alice', { connectHeaders: { login: 'alice', passcode: 'alice' } });
    const { client: bob } = await connect('bob', { connectHeaders: { login: 'bob', passcode: 'bob' } });
    const aliceRoom = await subscribe(alice, `/topic/chat.${room}`);
    const bobRoom = await subscribe(bob, `/topic/chat.${room}`);
    const acks = await subscribe(alice, '/user/queue/chat-acks');
    const errors = await subscribe(alice, '/user/queue/errors');

    // A subscription mapping: its handler's value arrives once, before the SUBSCRIBE's receipt.
    const online = await subscribe(alice, '/app/chat/online');
    check(online.mailbox.items.length === 1, `the online list came before the receipt (${online.mailbox.items.length} messages)`);
    const who = JSON.parse((await online.mailbox.next()).body);
    check(JSON.stringify(who) === JSON.stringify(['alice', 'bob']), `online: ${JSON.stringify(who)}`);

    // A SEND to the handler with reply-to: the reply comes to alice alone, before the SEND's receipt.
    await publishConfirmed(alice, {
      destination: `/app/chat/${room}`,
      body: JSON.stringify({ text: 'hello from stomp.js' }),
      headers: { 'content-type': 'application/json', 'reply-to': '/user/queue/chat-acks' },
    });
    check(acks.mailbox.items.length === 1, 'the reply came before the receipt');
    const ack = JSON.parse((await acks.mailbox.next()).body);
    check(ack.room === room && typeof ack.sentAt === 'string', `reply ${JSON.stringify(ack)}`);
    const lines = [await aliceRoom.mailbox.next(), await bobRoom.mailbox.next()].map(m => JSON.parse(m.body));
    lines.forEach((line, i) => check(line.from === 'alice' && line.text === 'hello from stomp.js' && line.room === room, `line ${i}: ${JSON.stringify(line)}`));

    // A refused message: an error message to alice, and her connection stays open.
    alice.publish({ destination: `/app/chat/${room}`, body: JSON.stringify({ text: ' ' }), headers: { 'content-type': 'application/json' } });
    const error = await errors.mailbox.next();
    check(error.headers.message === 'a chat message needs text', `error ${JSON.stringify(error.headers)}`);
    check(JSON.parse(error.body).error === 'StompApplicationException', `error body ${error.body}`);

    // A server-side notification from the HTTP endpoint reaches the room.
    const response = await fetch(`${http}/rooms/${room}/announcements`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'announced over HTTP' }),
    });
    check(response.status === 202, `POST announcements: ${response.status}`);
    for (const mailbox of [aliceRoom.mailbox, bobRoom.mailbox]) {
      const line = JSON.parse((await mailbox.next()).body);
      check(line.from === 'server' && line.text === 'announced over HTTP', `announcement ${JSON.stringify(line)}`);
    }

    // An /app/ destination nothing maps: an ERROR naming it, on a connection of its own.
    const { client: stray } = await connect('stray');
    const refused = new Promise(resolve => {
      stray.onStompError = frame => resolve(frame);
    });
    stray.closingOnPurpose = true;
    stray.publish({ destination: '/app/nowhere', body: 'x' });
    const frame = await withTimeout(refused, STEP_TIMEOUT_MS, 'the ERROR for /app/nowhere');
    check(frame.headers.message === "no application handler for '/app/nowhere'", `ERROR ${JSON.stringify(frame.headers)}`);
    await stray.deactivate();

    await disconnect(alice);
    await disconnect(bob);
    return { online: who, reply: Object.keys(ack), error: error.headers.message, unmapped: frame.headers.message };
  },

  async wildcard() {
    const root = `interop-wc-${runId}`;
    const { client, connected } = await connect('wildcard');
    const star = await subscribe(client, `/topic/${root}.a.*.c`);
    const hash = await subscribe(client, `/topic/${root}.a.#`);
    const destination = `/topic/${root}.a.b.c`;
    await publishConfirmed(client, { destination, body: 'wild' });
    const fromStar = await star.mailbox.next(STEP_TIMEOUT_MS, 'the message on a.*.c');
    const fromHash = await hash.mailbox.next(STEP_TIMEOUT_MS, 'the message on a.#');
    check(fromStar.body === 'wild' && fromHash.body === 'wild', 'wrong bodies');
    await publishConfirmed(client, { destination: `/topic/${root}.a.b.d`, body: 'only-hash' });
    const second = await hash.mailbox.next(STEP_TIMEOUT_MS, 'the a.b.d message on a.#');
    check(second.body === 'only-hash', `a.# got ${JSON.stringify(second.body)}`);
    await delay(200);
    check(star.mailbox.items.length === 0, 'a.*.c received a message published to a.b.d');
    await disconnect(client);
    return {
      version: connected.headers.version,
      starDestination: fromStar.headers.destination,
      hashDestination: fromHash.headers.destination,
    };
  },
};

// Scenarios that move a lot of data get a longer budget.
const scenarioTimeouts = { large: 40_000 };

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  if (!url || !scenarioName) {
    throw new Error(`usage: node stompjs-scenarios.mjs <ws-url> <scenario>; scenarios: ${Object.keys(scenarios).join(', ')}`);
  }
  const scenario = scenarios[scenarioName];
  if (!scenario) {
    throw new Error(`unknown scenario ${JSON.stringify(scenarioName)}; scenarios: ${Object.keys(scenarios).join(', ')}`);
  }
  const timeoutMs = scenarioTimeouts[scenarioName] ?? DEFAULT_SCENARIO_TIMEOUT_MS;
  const timer = setTimeout(() => fail(new Error(`scenario ${scenarioName} timed out after ${timeoutMs} ms`)), timeoutMs);
  const result = await scenario();
  clearTimeout(timer);
  return result;
}

process.on('unhandledRejection', err => fail(err));
process.on('uncaughtException', err => fail(err));

main().then(finish, fail);

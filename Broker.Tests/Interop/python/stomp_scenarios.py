#!/usr/bin/python3
"""Interop scenarios for the broker driven by stomp.py 8 (Debian's python3-stomp) over TCP.

    /usr/bin/python3 stomp_scenarios.py <host> <port> <scenario>
    STOMP_TLS_CA=ca.pem /usr/bin/python3 stomp_scenarios.py <host> <tls-port> <scenario>   (over TLS)

Prints exactly one JSON line on stdout: {"ok": true, ...} (exit 0) or {"ok": false, "error": "..."}
(exit 1). On failure the recent stomp.py log goes to stderr (all of it, live, with STOMP_DEBUG=1).
Every scenario has its own overall timeout, enforced by a watchdog thread that exits the process,
so a run can never hang. Destinations carry a random suffix so runs may go in parallel.
"""

import collections
import json
import logging
import os
import queue
import sys
import threading
import time
import traceback
import urllib.request
import uuid

import stomp

STEP_TIMEOUT = 10.0
DEFAULT_SCENARIO_TIMEOUT = 20.0
SCENARIO_TIMEOUTS = {"large": 40.0}
LIVE_DEBUG = os.environ.get("STOMP_DEBUG") == "1"
RUN_ID = uuid.uuid4().hex[:12]

# ---------------------------------------------------------------------------------------------
# Output, logging and failure


class RingHandler(logging.Handler):
    def __init__(self, size=200):
        super().__init__(logging.DEBUG)
        self.lines = collections.deque(maxlen=size)

    def emit(self, record):
        try:
            text = self.format(record)
        except Exception:  # a log record that cannot be formatted must not break the scenario
            text = repr(record.msg)
        if len(text) > 400:
            text = "%s… (%d chars)" % (text[:400], len(text))
        self.lines.append(text)


_ring = RingHandler()
_ring.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(levelname)s %(message)s"))
_stomp_logger = logging.getLogger("stomp.py")
_stomp_logger.addHandler(_ring)
_stomp_logger.setLevel(logging.DEBUG)
_stomp_logger.propagate = False
if LIVE_DEBUG:
    _live = logging.StreamHandler(sys.stderr)
    _live.setFormatter(_ring.formatter)
    _stomp_logger.addHandler(_live)

_output_lock = threading.Lock()
_scenario_name = None


def log(message):
    _stomp_logger.info("[scenario] %s", message)


def _emit(payload, code):
    with _output_lock:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        # stomp.py runs receiver and heart-beat threads that may block a normal exit.
        os._exit(code)


def succeed(details):
    payload = {"ok": True, "scenario": _scenario_name}
    payload.update(details)
    _emit(payload, 0)


def fail(message, exc_info=None):
    if not LIVE_DEBUG and _ring.lines:
        sys.stderr.write("--- last stomp.py log lines ---\n" + "\n".join(_ring.lines) + "\n")
    if exc_info is not None:
        sys.stderr.write("".join(traceback.format_exception(*exc_info)))
    _emit({"ok": False, "scenario": _scenario_name, "error": message}, 1)


class ScenarioError(Exception):
    pass


def check(condition, message):
    if not condition:
        raise ScenarioError(message)


def unique(kind, name):
    return "/%s/interop-%s-%s" % (kind, name, RUN_ID)


# ---------------------------------------------------------------------------------------------
# A listener that collects what arrives so scenarios can wait for it with timeouts.


class Collector(stomp.ConnectionListener):
    def __init__(self, label):
        self.label = label
        self.connected = threading.Event()
        self.answered = threading.Event()  # CONNECTED, ERROR or a close: waiting for CONNECTED ends
        self.connected_frame = None
        self.closing = False
        self.tolerate_errors = False  # a scenario that expects an ERROR (and the close after it)
        self.error_frames = queue.Queue()
        self.lost = None
        self.errors = []
        self.heartbeats = 0
        self.heartbeat_timeouts = 0
        self._lock = threading.Lock()
        self._mailboxes = {}
        self._receipts = {}

    def mailbox(self, subscription_id):
        with self._lock:
            return self._mailboxes.setdefault(subscription_id, queue.Queue())

    def receipt_event(self, receipt_id):
        with self._lock:
            return self._receipts.setdefault(receipt_id, threading.Event())

    def on_connected(self, frame):
        self.connected_frame = frame
        self.connected.set()
        self.answered.set()

    def on_message(self, frame):
        self.mailbox(frame.headers.get("subscription")).put(frame)

    def on_receipt(self, frame):
        self.receipt_event(frame.headers.get("receipt-id")).set()

    def on_error(self, frame):
        body = frame.body if isinstance(frame.body, str) else frame.body.decode("utf-8", "replace")
        self.errors.append("ERROR frame: message=%r body=%r" % (frame.headers.get("message"), body[:300]))
        self.error_frames.put(frame)
        if self.tolerate_errors:
            self.closing = True
        elif self.connected.is_set():
            fail("[%s] %s" % (self.label, self.errors[-1]))
        self.answered.set()

    def on_heartbeat(self):
        self.heartbeats += 1

    def on_heartbeat_timeout(self):
        self.heartbeat_timeouts += 1

    def on_disconnected(self):
        if not self.closing:
            self.lost = "connection closed unexpectedly"
            if self.connected.is_set():
                fail("[%s] connection closed unexpectedly" % self.label)
        self.answered.set()


class Connection:
    """A stomp.py connection of a chosen version plus its Collector."""

    CLASSES = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}

    def __init__(self, host, port, label, version="1.2", heartbeats=(0, 0), auto_decode=True, login="guest"):
        self.label = label
        self.version = version
        kwargs = {"auto_decode": auto_decode, "reconnect_attempts_max": 1, "timeout": STEP_TIMEOUT}
        if version != "1.0":
            kwargs["heartbeats"] = heartbeats
            # stomp.py sends host:<the host connected to>; STOMP_VHOST overrides it (RabbitMQ reads
            # the host header as its virtual host and wants "/").
            if os.environ.get("STOMP_VHOST"):
                kwargs["vhost"] = os.environ["STOMP_VHOST"]
        self.conn = self.CLASSES[version]([(host, port)], **kwargs)
        # STOMP_TLS_CA=<PEM file>: connect over TLS, verifying the server's certificate against that file.
        if os.environ.get("STOMP_TLS_CA"):
            self.conn.set_ssl(for_hosts=[(host, port)], ca_certs=os.environ["STOMP_TLS_CA"])
        self.listener = Collector(label)
        self.conn.set_listener("collector", self.listener)
        self._counter = 0

        try:
            self.conn.connect(login, login, wait=False)
        except stomp.exception.ConnectFailedException:
            raise ScenarioError("[%s] could not open a TCP connection to %s:%s" % (label, host, port)) from None
        self.listener.answered.wait(STEP_TIMEOUT)
        if not self.listener.connected.is_set():
            detail = "; ".join(self.listener.errors) or self.listener.lost or "no answer within %.0f s" % STEP_TIMEOUT
            raise ScenarioError("[%s] CONNECT failed: %s" % (label, detail))
        self.connected_headers = dict(self.listener.connected_frame.headers)

    def next_id(self, what):
        self._counter += 1
        return "%s-%s-%d" % (what, RUN_ID, self._counter)

    def wait_receipt(self, receipt_id, what):
        if not self.listener.receipt_event(receipt_id).wait(STEP_TIMEOUT):
            raise ScenarioError("[%s] no RECEIPT %s for %s" % (self.label, receipt_id, what))

    def subscribe(self, destination, ack="auto"):
        """SUBSCRIBE with a receipt, so the subscription is live before anything is sent."""
        sub_id = self.next_id("sub")
        receipt = self.next_id("rcpt")
        self.conn.subscribe(destination, id=sub_id, ack=ack, headers={"receipt": receipt})
        self.wait_receipt(receipt, "SUBSCRIBE " + destination)
        return sub_id

    def send(self, destination, body, headers=None, confirmed=False, **kwargs):
        headers = dict(headers or {})
        receipt = None
        if confirmed:
            receipt = self.next_id("rcpt")
            headers["receipt"] = receipt
        self.conn.send(destination, body, headers=headers, **kwargs)
        if receipt:
            self.wait_receipt(receipt, "SEND to " + destination)

    def next_message(self, sub_id, what):
        try:
            return self.listener.mailbox(sub_id).get(timeout=STEP_TIMEOUT)
        except queue.Empty:
            raise ScenarioError("[%s] timed out waiting for %s" % (self.label, what)) from None

    def take(self, sub_id, count):
        return [self.next_message(sub_id, "message %d of %d" % (i + 1, count)) for i in range(count)]

    def pending(self, sub_id):
        return self.listener.mailbox(sub_id).qsize()

    def ack_id(self, frame):
        return frame.headers["ack"] if self.version == "1.2" else frame.headers["message-id"]

    def ack(self, frame, receipt=None):
        if self.version == "1.2":
            self.conn.ack(frame.headers["ack"], receipt=receipt)
        else:
            self.conn.ack(frame.headers["message-id"], frame.headers["subscription"], receipt=receipt)

    def nack(self, frame):
        if self.version == "1.2":
            self.conn.nack(frame.headers["ack"])
        else:
            self.conn.nack(frame.headers["message-id"], frame.headers["subscription"])

    def disconnect(self):
        self.listener.closing = True
        receipt = self.next_id("bye")
        done = threading.Thread(target=self.conn.disconnect, kwargs={"receipt": receipt}, daemon=True)
        done.start()
        done.join(STEP_TIMEOUT)
        if done.is_alive():
            raise ScenarioError("[%s] DISCONNECT did not complete within %.0f s" % (self.label, STEP_TIMEOUT))


def body_text(frame):
    return frame.body if isinstance(frame.body, str) else frame.body.decode("utf-8")


def require_message_headers(frame, destination, sub_id):
    h = frame.headers
    check(h.get("destination") == destination, "MESSAGE destination %r != %r" % (h.get("destination"), destination))
    check(h.get("message-id"), "MESSAGE has no message-id header")
    check(h.get("subscription") == sub_id, "MESSAGE subscription %r != %r" % (h.get("subscription"), sub_id))


# ---------------------------------------------------------------------------------------------
# Scenarios


def round_trip(host, port, version, name):
    """Pub/sub of 10 messages with user headers; shared by pubsub, version10 and version11."""
    destination = unique("topic", name)
    c = Connection(host, port, name, version=version)
    sub_id = c.subscribe(destination)
    count = 10
    for i in range(count):
        c.send(destination, "message %d" % i, headers={"x-seq": str(i), "x-colon": "a:b"})
    messages = c.take(sub_id, count)
    for i, m in enumerate(messages):
        check(m.headers.get("x-seq") == str(i), "message %d: x-seq %r (out of order or lost)" % (i, m.headers.get("x-seq")))
        check(m.headers.get("x-colon") == "a:b", "message %d: x-colon %r, expected 'a:b'" % (i, m.headers.get("x-colon")))
        check(body_text(m) == "message %d" % i, "message %d: body %r" % (i, m.body))
        require_message_headers(m, destination, sub_id)
    c.disconnect()
    return c, messages


def scenario_pubsub(host, port):
    c, messages = round_trip(host, port, "1.2", "pubsub")
    check(c.connected_headers.get("version") == "1.2", "CONNECTED version %r" % c.connected_headers.get("version"))
    return {"version": c.connected_headers.get("version"), "server": c.connected_headers.get("server"),
            "received": len(messages), "messageHeaders": sorted(messages[0].headers)}


def scenario_version10(host, port):
    c, messages = round_trip(host, port, "1.0", "v10")
    version = c.connected_headers.get("version")
    check(version in (None, "1.0"), "CONNECTED version %r, expected 1.0 (or none)" % version)
    return {"version": version, "received": len(messages), "connectedHeaders": sorted(c.connected_headers)}


def scenario_version11(host, port):
    c, messages = round_trip(host, port, "1.1", "v11")
    version = c.connected_headers.get("version")
    check(version == "1.1", "CONNECTED version %r, expected 1.1" % version)
    return {"version": version, "received": len(messages)}


def scenario_receipt(host, port):
    c = Connection(host, port, "receipt")
    receipt = c.next_id("receipt")
    c.conn.send(unique("topic", "receipt"), "with receipt", headers={"receipt": receipt})
    c.wait_receipt(receipt, "SEND")
    c.disconnect()
    return {"version": c.connected_headers.get("version"), "receiptId": receipt}


def expect_only_sentinel(host, port, destination, ack, what):
    """A fresh consumer must get only what is sent now, nothing left over."""
    c = Connection(host, port, "verifier")
    sub_id = c.subscribe(destination, ack=ack)
    c.send(destination, "sentinel", headers={"x-seq": "sentinel"}, confirmed=True)
    first = c.next_message(sub_id, "the sentinel")
    check(first.headers.get("x-seq") == "sentinel", "message %r was delivered again %s" % (first.headers.get("x-seq"), what))
    c.ack(first)
    time.sleep(0.3)
    check(c.pending(sub_id) == 0, "%d unexpected message(s) after the sentinel" % c.pending(sub_id))
    c.disconnect()


def scenario_ack_client_individual(host, port):
    destination = unique("queue", "ack-ci")
    c = Connection(host, port, "consumer")
    sub_id = c.subscribe(destination, ack="client-individual")
    count = 3
    for i in range(count):
        c.send(destination, "m%d" % i, headers={"x-seq": str(i)})

    deliveries = nacked = 0
    seen = collections.Counter()
    acked = set()
    redelivered_header = None
    while len(acked) < count:
        m = c.next_message(sub_id, "delivery %d (acked %d/%d)" % (deliveries + 1, len(acked), count))
        deliveries += 1
        require_message_headers(m, destination, sub_id)
        check(m.headers.get("ack"), "MESSAGE in client-individual mode has no ack header (1.2)")
        seq = m.headers.get("x-seq")
        seen[seq] += 1
        if seq == "0" and nacked == 0:
            c.nack(m)
            nacked += 1
            continue
        if seq == "0":
            redelivered_header = m.headers.get("redelivered")
        if len(acked) == count - 1:
            receipt = c.next_id("ack")
            c.ack(m, receipt=receipt)
            acked.add(seq)
            c.wait_receipt(receipt, "the last ACK")
        else:
            c.ack(m)
            acked.add(seq)
    check(seen["0"] == 2, "message 0 was delivered %d time(s), expected 2 (NACK must redeliver)" % seen["0"])
    c.disconnect()
    expect_only_sentinel(host, port, destination, "client-individual", "after ACK")
    return {"version": c.connected_headers.get("version"), "deliveries": deliveries, "nacked": nacked,
            "acked": len(acked), "redeliveredHeader": redelivered_header}


def scenario_transaction(host, port):
    destination = unique("topic", "tx")
    c = Connection(host, port, "tx")
    sub_id = c.subscribe(destination)
    committed = c.conn.begin()
    for i in range(3):
        c.send(destination, "commit-%d" % i, headers={"transaction": committed})
    aborted = c.conn.begin()
    for i in range(2):
        c.send(destination, "abort-%d" % i, headers={"transaction": aborted})
    # Sent outside any transaction while both are open: it must arrive before anything transacted.
    c.send(destination, "probe")
    c.conn.abort(aborted)
    c.conn.commit(committed)
    c.send(destination, "sentinel", confirmed=True)
    bodies = [body_text(m) for m in c.take(sub_id, 5)]
    expected = ["probe", "commit-0", "commit-1", "commit-2", "sentinel"]
    check(bodies == expected, "received %r, expected %r" % (bodies, expected))
    time.sleep(0.2)
    check(c.pending(sub_id) == 0, "extra messages after the sentinel")
    c.disconnect()
    return {"version": c.connected_headers.get("version"), "received": bodies}


def scenario_heartbeat(host, port):
    destination = unique("topic", "hb")
    c = Connection(host, port, "hb", heartbeats=(200, 200))
    hb = c.connected_headers.get("heart-beat")
    check(hb, "CONNECTED has no heart-beat header")
    try:
        sx, sy = (int(v) for v in hb.split(","))
    except ValueError:
        raise ScenarioError("CONNECTED heart-beat %r is not 'sx,sy'" % hb) from None
    check(sx > 0 and sy > 0, "CONNECTED heart-beat is %r: both sides must be non-zero" % hb)
    idle = 2.0
    time.sleep(idle)
    check(c.listener.heartbeat_timeouts == 0, "stomp.py reported %d heart-beat timeout(s)" % c.listener.heartbeat_timeouts)
    check(c.conn.is_connected(), "no longer connected after 2 s idle")
    # Server-to-client beats come every max(sx, 200) ms; expect some when that fits the idle time.
    server_every = max(sx, 200) / 1000.0
    if server_every * 1.5 < idle:
        check(c.listener.heartbeats > 0, "no heart-beat received from the server in %.0f s idle (expected one every %.1f s)"
              % (idle, server_every))
    sub_id = c.subscribe(destination)
    c.send(destination, "still alive")
    m = c.next_message(sub_id, "the message after the idle period")
    check(body_text(m) == "still alive", "body %r" % m.body)
    check(c.conn.is_connected(), "disconnected after the round trip")
    c.disconnect()
    return {"version": c.connected_headers.get("version"), "serverHeartBeat": hb, "heartbeatsReceived": c.listener.heartbeats}


def scenario_binary(host, port):
    destination = unique("topic", "bin")
    c = Connection(host, port, "binary", auto_decode=False)
    sub_id = c.subscribe(destination)
    payload = bytes(range(256))
    c.send(destination, payload, content_type="application/octet-stream")
    m = c.next_message(sub_id, "the binary message")
    check(isinstance(m.body, bytes), "body is %s, expected bytes (auto_decode=False)" % type(m.body).__name__)
    check(len(m.body) == 256, "binary body is %d bytes, expected 256" % len(m.body))
    for i in range(256):
        check(m.body[i] == i, "binary body byte %d is %d" % (i, m.body[i]))
    check(m.headers.get("content-length") == "256", "MESSAGE content-length %r, expected '256'" % m.headers.get("content-length"))
    check(m.headers.get("content-type") == "application/octet-stream", "content-type %r" % m.headers.get("content-type"))

    text = "héllo ✓ 日本"
    c.send(destination, text, content_type="text/plain;charset=utf-8")
    t = c.next_message(sub_id, "the UTF-8 text message")
    check(t.body == text.encode("utf-8"), "text body %r != %r" % (t.body, text.encode("utf-8")))
    c.disconnect()
    return {"version": c.connected_headers.get("version"), "binaryBytes": len(m.body),
            "binaryContentLength": m.headers.get("content-length"), "textBytes": len(t.body)}


def scenario_large(host, port):
    size = 1024 * 1024
    pattern = "The quick brown fox jumps over the lazy dog 0123456789.\n"
    body = (pattern * (size // len(pattern) + 1))[: size - 12] + RUN_ID
    check(len(body) == size, "test body has the wrong size")
    destination = unique("topic", "large")
    c = Connection(host, port, "large")
    sub_id = c.subscribe(destination)
    c.send(destination, body, confirmed=True)
    m = c.next_message(sub_id, "the 1 MiB message")
    got = body_text(m)
    check(len(got) == size, "received %d chars, expected %d" % (len(got), size))
    check(got == body, "body content differs")
    c.disconnect()
    return {"version": c.connected_headers.get("version"), "bytes": len(got)}


def scenario_chat_sample(host, port):
    """The README's chat sample (Broker.Tests/Application/ChatSample.cs), served by ChatSampleInteropTests."""
    check(_http_base, "chat-sample needs the HTTP base URL as a fourth argument")
    room = "interop-%s" % RUN_ID
    alice = Connection(host, port, "alice", login="alice")
    bob = Connection(host, port, "bob", login="bob")
    alice_room = alice.subscribe("/topic/chat.%s" % room)
    bob_room = bob.subscribe("/topic/chat.%s" % room)
    replies = alice.subscribe("/user/queue/replies")
    errors = alice.subscribe("/user/queue/errors")

    # A subscription mapping: the online list arrives once, before the SUBSCRIBE's receipt.
    online = alice.subscribe("/app/chat/online")
    check(alice.pending(online) == 1, "the online list came before the receipt (%d messages)" % alice.pending(online))
    who = json.loads(body_text(alice.next_message(online, "the online list")))
    check(who == ["alice", "bob"], "online: %r" % who)

    # A SEND to the handler: the room gets the line, alice alone the reply on /user/queue/replies, then the receipt.
    alice.send("/app/chat/%s" % room, json.dumps({"text": "hello from stomp.py"}), content_type="application/json", confirmed=True)
    check(alice.pending(replies) == 1, "the reply came before the receipt")
    reply = json.loads(body_text(alice.next_message(replies, "the reply")))
    check(reply.get("room") == room and "sentAt" in reply, "reply %r" % reply)
    for conn, sub in ((alice, alice_room), (bob, bob_room)):
        line = json.loads(body_text(conn.next_message(sub, "the chat line")))
        check(line.get("from") == "alice" and line.get("text") == "hello from stomp.py", "line %r" % line)

    # A refused message: an error message to alice, and her connection stays open (the next SEND gets its receipt).
    alice.send("/app/chat/%s" % room, json.dumps({"text": ""}), content_type="application/json")
    error = alice.next_message(errors, "the error message")
    check(error.headers.get("message") == "a chat message needs text", "error %r" % error.headers)
    alice.send("/app/chat/%s" % room, json.dumps({"text": "still here"}), content_type="application/json", confirmed=True)
    alice.next_message(replies, "the second reply")

    # A server-side notification from the HTTP endpoint reaches the room.
    request = urllib.request.Request("%s/rooms/%s/announcements" % (_http_base, room), data=json.dumps({"text": "announced over HTTP"}).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT) as response:
        check(response.status == 202, "POST announcements: %d" % response.status)
    for conn, sub in ((alice, alice_room), (bob, bob_room)):
        lines = [json.loads(body_text(conn.next_message(sub, "a room line"))) for _ in range(2)]  # "still here", then the announcement
        check(lines[-1].get("from") == "server" and lines[-1].get("text") == "announced over HTTP", "announcement %r" % lines)

    # An /app/ destination nothing maps: an ERROR naming it, on a connection of its own.
    stray = Connection(host, port, "stray")
    stray.listener.tolerate_errors = True
    stray.conn.send("/app/nowhere", "x")
    try:
        frame = stray.listener.error_frames.get(timeout=STEP_TIMEOUT)
    except queue.Empty:
        raise ScenarioError("no ERROR for /app/nowhere") from None
    check(frame.headers.get("message") == "no application handler for '/app/nowhere'", "ERROR %r" % frame.headers)

    alice.disconnect()
    bob.disconnect()
    return {"online": who, "reply": sorted(reply), "error": error.headers.get("message"), "unmapped": frame.headers.get("message")}


SCENARIOS = {
    "pubsub": scenario_pubsub,
    "receipt": scenario_receipt,
    "ack-client-individual": scenario_ack_client_individual,
    "transaction": scenario_transaction,
    "heartbeat": scenario_heartbeat,
    "binary": scenario_binary,
    "large": scenario_large,
    "version10": scenario_version10,
    "version11": scenario_version11,
    "chat-sample": scenario_chat_sample,
}


_http_base = None


def main(argv):
    global _scenario_name, _http_base
    if len(argv) not in (4, 5):
        fail("usage: stomp_scenarios.py <host> <port> <scenario> [<http base url>]; scenarios: " + ", ".join(SCENARIOS))
    host, port, _scenario_name = argv[1], argv[2], argv[3]
    _http_base = argv[4].rstrip("/") if len(argv) == 5 else None
    scenario = SCENARIOS.get(_scenario_name)
    if scenario is None:
        fail("unknown scenario %r; scenarios: %s" % (_scenario_name, ", ".join(SCENARIOS)))
    timeout = SCENARIO_TIMEOUTS.get(_scenario_name, DEFAULT_SCENARIO_TIMEOUT)
    watchdog = threading.Timer(timeout, lambda: fail("scenario %s timed out after %.0f s" % (_scenario_name, timeout)))
    watchdog.daemon = True
    watchdog.start()
    try:
        details = scenario(host, int(port))
    except ScenarioError as e:
        fail(str(e))
    except Exception as e:  # any library failure is a scenario failure, reported as JSON
        fail("%s: %s" % (type(e).__name__, e), sys.exc_info())
    succeed(details)


if __name__ == "__main__":
    main(sys.argv)

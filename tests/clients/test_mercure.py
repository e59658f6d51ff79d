#!/usr/bin/env python3
"""Third-party Python clients against the real ssehub binary, on its Mercure endpoint.

The publisher is `requests` (a form POST with a bearer token, as every Mercure publisher does);
the subscriber is `sseclient-py` parsing a streamed `requests` response (EventSource-style).
Tokens are HS256 JWTs minted here with the standard library, in both shapes the hub reads:
legacy `{"mercure": {...}}` claims and draft-08 (RFC 9068 `at+jwt` with
`authorization_details`).

Run through tests/clients/run (it installs the pinned clients in a venv), or directly with those
installed: `python tests/clients/test_mercure.py -v`. The binary is $SSEHUB_BIN, by default
target/release/ssehub of this repository. Plain unittest; every wait is bounded.
"""

import atexit
import base64
import ctypes
import hashlib
import hmac
import json
import os
import queue
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import unittest
import uuid

import requests
import sseclient

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("SSEHUB_BIN") or os.path.join(HERE, "..", "..", "target", "release", "ssehub")

STARTUP_TIMEOUT = 15  # seconds for the server to log its address
HTTP_TIMEOUT = 5  # connect and read timeout of plain requests
EVENT_TIMEOUT = 5  # wait for one expected event
HEARTBEAT = "1s"  # the server's heartbeat, so a live stream is never silent for long...
STREAM_READ_TIMEOUT = 15  # ...and a stream silent this long is dead (the reader then reports it)

DETAIL_TYPE = "https://mercure.rocks/authorization-detail"
ISSUER = "https://localhost"  # the server's default --trusted-issuers


# --- tokens ---------------------------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def hs256(claims: dict, key: str, typ: str = "JWT") -> str:
    """A compact HS256 JWS of `claims`."""
    header = {"alg": "HS256", "typ": typ}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode("utf-8")) for part in (header, claims)
    )
    mac = hmac.new(key.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256)
    signature = mac.digest()
    return f"{signing_input}.{b64url(signature)}"


def legacy_token(key: str, publish=None, subscribe=None) -> str:
    mercure = {}
    if publish is not None:
        mercure["publish"] = publish
    if subscribe is not None:
        mercure["subscribe"] = subscribe
    return hs256({"mercure": mercure}, key)


def draft08_token(key: str, audience: str, actions, matches, issuer: str = ISSUER) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "exp": now + 600,
        "sub": "python-client-test",
        "authorization_details": [
            {
                "type": DETAIL_TYPE,
                "actions": list(actions),
                "topics": [{"match": m} for m in matches],
            }
        ],
    }
    return hs256(claims, key, typ="at+jwt")


# --- the server -----------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LISTENING = re.compile(r"listening addr=127\.0\.0\.1:(\d+)")


def die_with_parent():
    """In the child before exec: SIGKILL it when this process dies, however it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


class Server:
    """ssehub on 127.0.0.1:0; its output is kept for failure messages."""

    def __init__(self, key: str):
        if not os.path.isfile(BIN) or not os.access(BIN, os.X_OK):
            raise RuntimeError(
                f"ssehub binary not found or not executable: {BIN} "
                "(build it with `cargo build --release --bin ssehub`, or set SSEHUB_BIN)"
            )
        # The hub's behaviour must come from the flags below alone, not from the caller's
        # SSEHUB_* / MERCURE_* environment.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SSEHUB_", "MERCURE_")) and k != "RUST_LOG"
        }
        env["NO_COLOR"] = "1"
        self.lines = []
        self._port = queue.Queue()
        self.proc = subprocess.Popen(
            [
                BIN,
                "--bind", "127.0.0.1:0",
                f"--jwt-key={key}",  # one argument: a random key may start with "-"
                "--heartbeat", HEARTBEAT,
                "--shutdown-grace", "1s",
                "--log", "info",
                "--access-log",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            preexec_fn=die_with_parent,
        )
        atexit.register(self.stop)
        threading.Thread(target=self._drain, name="ssehub-output", daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            line = ANSI.sub("", line.rstrip("\n"))
            self.lines.append(line)
            match = LISTENING.search(line)
            if match:
                self._port.put(int(match.group(1)))
        self._port.put(None)  # output closed: the process is gone

    def port(self) -> int:
        try:
            port = self._port.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            raise RuntimeError(
                f"ssehub logged no `listening addr=127.0.0.1:PORT` line within {STARTUP_TIMEOUT}s"
                f"\n{self.log()}"
            ) from None
        if port is None:
            self.proc.wait(timeout=5)
            raise RuntimeError(
                f"ssehub exited with {self.proc.returncode} before listening\n{self.log()}"
            )
        return port

    def log(self, last: int = 40) -> str:
        tail = self.lines[-last:]
        return "--- ssehub output (last %d lines) ---\n%s" % (len(tail), "\n".join(tail))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()


# --- the subscriber -------------------------------------------------------------------------

CLOSED = object()  # the stream ended


class Subscription:
    """One EventSource-style subscription: sseclient-py over a streamed requests response, read
    by a thread into a queue so that every wait has a timeout."""

    def __init__(self, url, params, headers, name):
        self.name = name
        self.seen = []
        # A session of its own: the connection of a stream is never handed to another request.
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment for 127.0.0.1
        self.response = self.session.get(
            url,
            params=params,
            headers={"Accept": "text/event-stream", **headers},
            stream=True,
            timeout=(HTTP_TIMEOUT, STREAM_READ_TIMEOUT),
        )
        self.events = queue.Queue()
        if self.response.status_code == 200:
            threading.Thread(target=self._pump, name=f"sse {name}", daemon=True).start()

    def _pump(self):
        try:
            for event in sseclient.SSEClient(self.response).events():
                self.events.put(event)
            self.events.put(CLOSED)
        except Exception as err:  # reported by next() to the test waiting for an event
            self.events.put(err)

    def next(self, timeout=EVENT_TIMEOUT):
        """The next event, or an AssertionError saying what was seen instead."""
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"[{self.name}] no event within {timeout}s; events so far: {self.describe()}"
            ) from None
        if item is CLOSED:
            raise AssertionError(
                f"[{self.name}] the stream ended; events so far: {self.describe()}"
            )
        if isinstance(item, Exception):
            raise AssertionError(
                f"[{self.name}] reading the stream failed: {item!r}; "
                f"events so far: {self.describe()}"
            )
        self.seen.append(item)
        return item

    def describe(self):
        return [(e.id, e.event, e.data) for e in self.seen] or "none"

    def close(self):
        # Shut the socket down first: closing the response waits for the reader thread, blocked
        # in a read until the next heartbeat otherwise. (Best effort: a urllib3 internal.)
        sock = getattr(getattr(self.response.raw, "_connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.response.close()
        self.session.close()


# --- the tests ------------------------------------------------------------------------------


def book() -> str:
    return f"https://example.com/books/{uuid.uuid4().hex}"


class MercureClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = secrets.token_urlsafe(32)
        cls.server = Server(cls.key)
        cls.addClassCleanup(cls.server.stop)
        port = cls.server.port()
        cls.hub = f"http://127.0.0.1:{port}/.well-known/mercure"
        cls.http = requests.Session()
        cls.http.trust_env = False  # no proxy from the environment for 127.0.0.1
        cls.addClassCleanup(cls.http.close)
        cls.legacy = legacy_token(cls.key, publish=["*"], subscribe=["*"])
        cls.draft08 = draft08_token(cls.key, cls.hub, ["publish", "subscribe"], ["*"])

    def tearDown(self):
        if not self.server.alive():
            self.fail(f"ssehub exited (status {self.server.proc.returncode})\n{self.server.log()}")

    # helpers

    def publish(self, token, fields, expect=200):
        """POSTs the form (a list of pairs: `topic` may repeat); returns the response text."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            if expect == 200:
                response = self.http.post(
                    self.hub, data=fields, headers=headers, timeout=HTTP_TIMEOUT
                )
            else:
                # A connection of its own: ssehub answers 401 before reading the body and then
                # closes the connection without `Connection: close`, so a pooled connection
                # would fail the next request ("Remote end closed connection without response").
                with requests.Session() as once:
                    once.trust_env = False
                    response = once.post(
                        self.hub, data=fields, headers=headers, timeout=HTTP_TIMEOUT
                    )
        except requests.RequestException as err:
            self.fail(f"publish {fields!r} failed: {err!r}\n{self.server.log()}")
        self.assertEqual(
            response.status_code,
            expect,
            f"publish {fields!r}: expected {expect}, got {response.status_code} {response.text!r}",
        )
        return response.text

    def subscribe(self, name, params, headers=None, token=None):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            sub = Subscription(self.hub, params, headers, name)
        except requests.RequestException as err:
            self.fail(f"[{name}] subscribing with {params!r} failed: {err!r}\n{self.server.log()}")
        self.addCleanup(sub.close)
        response = sub.response
        self.assertEqual(
            response.status_code,
            200,
            f"[{name}] GET {response.url}: expected 200, got {response.status_code} "
            f"{response.text if response.status_code != 200 else ''!r}",
        )
        self.assertTrue(
            response.headers.get("Content-Type", "").startswith("text/event-stream"),
            f"[{name}] Content-Type is {response.headers.get('Content-Type')!r}",
        )
        return sub

    def next_event(self, sub):
        try:
            return sub.next()
        except AssertionError as err:
            self.fail(f"{err}\n{self.server.log()}")

    def expect(self, sub, event_id, data, kind="message"):
        event = self.next_event(sub)
        self.assertEqual(
            (event.id, event.event, event.data),
            (event_id, kind, data),
            f"[{sub.name}] unexpected event (id, type, data); events so far: {sub.describe()}",
        )
        return event

    # a. legacy token, requests publisher, URI template subscription

    def test_a_legacy_token_uri_template(self):
        sub = self.subscribe("topic=books/{id}", {"topic": "https://example.com/books/{id}"})
        topic = book()
        # Not matched by the template: must not arrive.
        self.publish(self.legacy, [("topic", "https://example.com/authors/1"), ("data", "author")])

        data = '{"title": "Dune"}\nsecond line\n\nfourth line, after an empty one'
        custom_id = f"book-{uuid.uuid4().hex}-v2"
        returned = self.publish(
            self.legacy,
            [("topic", topic), ("data", data), ("id", custom_id), ("type", "book.updated")],
        )
        self.assertEqual(returned, custom_id, "the publish response is the event's id")
        self.expect(sub, custom_id, data, kind="book.updated")

        # No id and no type: the hub's id (the response body), the default type, and a trailing
        # newline kept (an empty last data line).
        returned = self.publish(self.legacy, [("topic", topic), ("data", "ends with a newline\n")])
        self.assertTrue(returned, "the publish response holds the hub's id")
        self.expect(sub, returned, "ends with a newline\n")

    # b. draft-08 token, match_urlpattern

    def test_b_draft08_token_urlpattern(self):
        sub = self.subscribe(
            "match_urlpattern=books/:id",
            {"match_urlpattern": "https://example.com/books/:id"},
            token=self.draft08,
        )
        topic = book()
        self.publish(self.draft08, [("topic", "https://example.com/authors/1"), ("data", "author")])
        first = self.publish(
            self.draft08,
            [
                ("topic", topic),
                ("data", "private\nupdate"),
                ("private", "on"),
                ("type", "book.private"),
            ],
        )
        second = self.publish(
            self.draft08,
            [("topic", topic), ("data", "public update"), ("id", f"b-{uuid.uuid4().hex}")],
        )
        # The draft-08 token's subscribe grant ("*") lets the private update through.
        self.expect(sub, first, "private\nupdate", kind="book.private")
        self.expect(sub, second, "public update")

    def test_b_tokens_are_verified(self):
        topic = book()
        fields = [("topic", topic), ("data", "x")]
        elsewhere = "http://elsewhere.test/.well-known/mercure"
        cases = [  # (what, token, expected status)
            ("no token", None, 401),
            ("legacy, another key", legacy_token("not-the-key", publish=["*"]), 401),
            ("legacy, no publish grant", legacy_token(self.key, subscribe=["*"]), 403),
            ("draft-08, another audience",
             draft08_token(self.key, elsewhere, ["publish"], ["*"]), 401),
            ("draft-08, untrusted issuer",
             draft08_token(self.key, self.hub, ["publish"], ["*"], issuer="https://evil.test"),
             401),
            ("draft-08, subscribe only",
             draft08_token(self.key, self.hub, ["subscribe"], ["*"]), 403),
        ]
        for name, token, expected in cases:
            with self.subTest(name):
                self.publish(token, fields, expect=expected)

    # c. resume with each cursor spelling

    def test_c_resume_replays_what_followed_the_cursor(self):
        topic = book()
        for n in (1, 2, 3):
            self.assertEqual(
                self.publish(
                    self.legacy, [("topic", topic), ("data", f"update {n}"), ("id", f"a{n}")]
                ),
                f"a{n}",
            )
        subs = [
            self.subscribe("lastEventID=a1", {"topic": topic, "lastEventID": "a1"}),
            self.subscribe("last_event_id=a1", {"match": topic, "last_event_id": "a1"}),
            self.subscribe("Last-Event-ID: a1", {"topic": topic}, headers={"Last-Event-ID": "a1"}),
        ]
        for sub in subs:
            for header in ("Mercure-Last-Event-ID", "Last-Event-ID"):  # draft-08, draft-07
                self.assertEqual(
                    sub.response.headers.get(header),
                    "a1",
                    f"[{sub.name}] {header} response header; "
                    f"headers: {dict(sub.response.headers)}",
                )
            self.expect(sub, "a2", "update 2")
            self.expect(sub, "a3", "update 3")
        # Nothing else was replayed: the next event is one published now.
        sentinel = self.publish(self.legacy, [("topic", topic), ("data", "sentinel"), ("id", "a4")])
        for sub in subs:
            self.expect(sub, sentinel, "sentinel")

    # d. private updates

    def test_d_private_update_needs_a_subscriber_token(self):
        topic = book()
        before = self.publish(self.legacy, [("topic", topic), ("data", "before")])
        anonymous = self.subscribe("anonymous", {"topic": topic})
        granted = self.subscribe(
            "token for the topic", {"topic": topic}, token=legacy_token(self.key, subscribe=[topic])
        )
        other = self.subscribe(
            "token for another topic",
            {"topic": topic},
            token=legacy_token(self.key, subscribe=["https://example.com/books/other"]),
        )
        secret = self.publish(
            self.legacy, [("topic", topic), ("data", "for subscribers"), ("private", "on")]
        )
        public = self.publish(self.legacy, [("topic", topic), ("data", "for everyone")])

        self.expect(granted, secret, "for subscribers")
        self.expect(granted, public, "for everyone")
        self.expect(anonymous, public, "for everyone")
        self.expect(other, public, "for everyone")

        # Replay is filtered the same way.
        anonymous = self.subscribe("anonymous, resumed", {"topic": topic, "lastEventID": before})
        granted = self.subscribe(
            "token, resumed",
            {"topic": topic, "lastEventID": before},
            token=legacy_token(self.key, subscribe=[topic]),
        )
        self.expect(granted, secret, "for subscribers")
        self.expect(granted, public, "for everyone")
        self.expect(anonymous, public, "for everyone")
        last = self.publish(self.legacy, [("topic", topic), ("data", "last")])
        self.expect(anonymous, last, "last")
        self.expect(granted, last, "last")


if __name__ == "__main__":
    program = unittest.main(exit=False)
    result = program.result
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = max(0, result.testsRun - failed - len(result.skipped))
    # Counted by scripts/test's closing tally (the same lines node's test runner prints).
    print(f"# pass {passed}\n# fail {failed}", flush=True)
    sys.exit(0 if result.wasSuccessful() else 1)

#!/usr/bin/env python3
"""Third-party Python clients against the real ssehub binary, on its Mercure endpoint.

The publisher is `requests` (a form POST with a bearer token, as every Mercure publisher does);
the subscriber is `sseclient-py` parsing a streamed `requests` response (EventSource-style).
Tokens are HS256 JWTs minted here with the standard library, in both shapes the hub reads:
legacy `{"mercure": {...}}` claims and draft-08 (RFC 9068 `at+jwt` with
`authorization_details`).

Run through tests/clients/run (it installs the pinned clients in a venv), or directly with those
installed: `python tests/clients/test_mercure.py -v`. The shared pieces (tokens, the server process, a
subscription) are in mercure_support.py. The binary is $SSEHUB_BIN, by default
target/release/ssehub of this repository. Plain unittest; every wait is bounded.
"""

import secrets
import sys
import unittest
import uuid

import requests

from mercure_support import HTTP_TIMEOUT, Server, Subscription, book, draft08_token, legacy_token


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

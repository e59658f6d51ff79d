"""What the Mercure client tests share: HS256 tokens minted with the standard library (legacy
and draft-08 shapes), the real ssehub binary as a child process, and a subscription read by
sseclient-py on a thread with bounded waits. Imported by test_mercure.py.
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
import socket
import subprocess
import threading
import time
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


def book() -> str:
    return f"https://example.com/books/{uuid.uuid4().hex}"

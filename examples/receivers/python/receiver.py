"""A webhook receiver for stile in Python 3, with nothing but the standard library.

It verifies each delivery's `stile-signature` header against the raw body, refuses a
timestamp more than five minutes from now, answers 200 at once, and handles each event
once (retries and resends reuse the event's id).

    STILE_WEBHOOK_SECRET=whsec_... python3 examples/receivers/python/receiver.py

Listens on 127.0.0.1:$PORT (3000 by default; 0 takes a free port) at /webhooks.
"""

import hashlib
import hmac
import http.server
import json
import os
import sys
import time

TOLERANCE_SECONDS = 300


def verify(raw_body: bytes, header: str, secret: str, now: float | None = None) -> dict:
    """Checks `header` (`t=<unix seconds>,v1=<hex>[,v1=<hex>]`) against the raw body.

    Each v1 is HMAC-SHA256 of "<t>." followed by the body, keyed with the whole whsec_
    secret. During a secret rotation the header carries one v1 per secret; one match is
    enough. Returns the event; raises ValueError if the delivery is not genuine.
    """
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        name, _, value = part.partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit():
        raise ValueError("no timestamp in stile-signature")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise ValueError("timestamp too old or too new")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise ValueError("no signature matches")
    return json.loads(raw_body)


# Event ids already handled. A real receiver keeps them in its database, with the work the
# event caused, so a retry after a crash is still recognised.
seen: set[str] = set()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path != "/webhooks":
            self.send_response(404)
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            event = verify(body, self.headers.get("stile-signature", ""), SECRET)
        except ValueError as err:
            print(f"rejected: {err}", flush=True)
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b"invalid signature\n")
            return
        # Answer first; do the work after (a slow answer is a failed delivery, retried).
        self.send_response(200)
        self.end_headers()
        if event["id"] in seen:
            print(f"duplicate {event['id']}", flush=True)
            return
        seen.add(event["id"])
        print(f"verified {event['id']} {event['type']}", flush=True)

    def log_message(self, *args):
        pass  # one line per event is printed above; no access log


if __name__ == "__main__":
    SECRET = os.environ.get("STILE_WEBHOOK_SECRET", "")
    if not SECRET:
        sys.exit("set STILE_WEBHOOK_SECRET to the endpoint's secret (whsec_...)")
    port = int(os.environ.get("PORT", "3000"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/webhooks", flush=True)
    server.serve_forever()

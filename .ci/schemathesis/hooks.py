"""Schemathesis hooks for stile's CI run (loaded through SCHEMATHESIS_HOOKS).

Every webhook URL that could be accepted (anything naming http: or https:) is replaced,
just before the request is sent, by a loopback address where nothing listens, so no
delivery leaves the machine. This runs in every phase: the documented examples and the
coverage phase's boundary values (`https://example.com/webhooks`, `https://0.com`) never
pass through generation hooks such as `map_body`, and without it they were delivered to
the outside world, which on a closed network means a DNS lookup that may hang for
seconds. Strings that are not URLs are left alone: their validation is fuzzed as
generated.
"""

import re

import schemathesis

LOOPBACK_TARGET = "http://127.0.0.1:9/schemathesis"
LOOKS_LIKE_URL = re.compile(r"(?i)https?:|://")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("url"), str) and LOOKS_LIKE_URL.search(body["url"]):
        body["url"] = LOOPBACK_TARGET

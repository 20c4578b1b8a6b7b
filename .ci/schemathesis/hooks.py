"""Schemathesis hooks for stile's CI run (loaded through SCHEMATHESIS_HOOKS).

Every generated webhook URL that could be accepted (anything naming http: or https:) is
replaced by a loopback address where nothing listens, so no delivery leaves the machine.
Strings that are not URLs are left alone: their validation is fuzzed as generated.
"""

import re

import schemathesis

LOOPBACK_TARGET = "http://127.0.0.1:9/schemathesis"
LOOKS_LIKE_URL = re.compile(r"(?i)https?:|://")


@schemathesis.hook
def map_body(ctx, body):
    if isinstance(body, dict) and isinstance(body.get("url"), str) and LOOKS_LIKE_URL.search(body["url"]):
        body["url"] = LOOPBACK_TARGET
    return body

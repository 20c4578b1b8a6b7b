"""Checks one recorded delivery with the reference libraries: `standardwebhooks` for the
`webhook-*` headers and Stripe's `WebhookSignature.verify_header` for `stile-signature`.

Usage: verify.py DELIVERY.json  where the file holds {"secret", "body", "headers"}.
Prints "ok" and exits 0 when both accept it; otherwise prints why and exits 1.
"""

import json
import sys

import standardwebhooks
import stripe


def main(path):
    with open(path, encoding="utf-8") as f:
        delivery = json.load(f)
    secret = delivery["secret"]
    body = delivery["body"]
    headers = delivery["headers"]
    standardwebhooks.Webhook(secret).verify(body, headers)
    stripe.WebhookSignature.verify_header(body, headers["stile-signature"], secret, tolerance=600)
    print("ok")


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as err:  # the test shows whatever a library refused
        print(f"refused: {type(err).__name__}: {err}")
        sys.exit(1)

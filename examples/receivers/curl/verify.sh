#!/bin/sh
# Verifies one stile delivery by hand, with openssl: the secret, the `stile-signature`
# header's value and a file holding the raw body exactly as received.
#
#   examples/receivers/curl/verify.sh "$STILE_WEBHOOK_SECRET" "$SIGNATURE_HEADER" body.json
#
# Each v1 in the header is HMAC-SHA256 of "<t>." followed by the raw body, keyed with the
# whole whsec_ secret. Exits 0 and prints "verified" if one matches and the timestamp is
# within five minutes of now; exits 1 saying why otherwise.
set -eu
if [ $# -ne 3 ]; then
  echo "usage: $0 SECRET SIGNATURE_HEADER BODY_FILE" >&2
  exit 2
fi
secret=$1 header=$2 body=$3

timestamp=$(printf '%s' "$header" | tr ',' '\n' | sed -n 's/^t=//p' | head -n 1)
case $timestamp in
  '' | *[!0-9]*) echo "rejected: no timestamp in stile-signature" >&2; exit 1 ;;
esac
age=$(( $(date +%s) - timestamp ))
if [ "$age" -gt 300 ] || [ "$age" -lt -300 ]; then
  echo "rejected: timestamp too old or too new ($age s)" >&2
  exit 1
fi

expected=$( { printf '%s.' "$timestamp"; cat "$body"; } \
  | openssl dgst -sha256 -hmac "$secret" -r | cut -d ' ' -f 1)
for signature in $(printf '%s' "$header" | tr ',' '\n' | sed -n 's/^v1=//p'); do
  if [ "$signature" = "$expected" ]; then
    echo "verified"
    exit 0
  fi
done
echo "rejected: no signature matches" >&2
exit 1

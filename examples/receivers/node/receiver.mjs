// A webhook receiver for stile in Node.js (18 or later), with nothing but Node's own
// modules. It verifies each delivery's `stile-signature` header against the raw body,
// refuses a timestamp more than five minutes from now, answers 200 at once, and handles
// each event once (retries and resends reuse the event's id).
//
//   STILE_WEBHOOK_SECRET=whsec_... node examples/receivers/node/receiver.mjs
//
// Listens on 127.0.0.1:$PORT (3000 by default; 0 takes a free port) at /webhooks.
import crypto from "node:crypto";
import http from "node:http";

const secret = process.env.STILE_WEBHOOK_SECRET;
if (!secret) {
  console.error("set STILE_WEBHOOK_SECRET to the endpoint's secret (whsec_...)");
  process.exit(2);
}
const port = Number(process.env.PORT || 3000);
const TOLERANCE_SECONDS = 300;

// Event ids already handled. A real receiver keeps them in its database, with the work
// the event caused, so a retry after a crash is still recognised.
const seen = new Set();

// Checks `header` (`t=<unix seconds>,v1=<hex>[,v1=<hex>]`) against the raw body: each v1
// is HMAC-SHA256 of "<t>." followed by the body, keyed with the whole whsec_ secret.
// During a secret rotation the header carries one v1 per secret; one match is enough.
export function verify(rawBody, header, key, now = Date.now() / 1000) {
  let timestamp;
  const signatures = [];
  for (const part of (header || "").split(",")) {
    const [name, value] = part.split("=", 2);
    if (name === "t") timestamp = value;
    else if (name === "v1" && value) signatures.push(value);
  }
  if (!timestamp || !/^\d+$/.test(timestamp)) throw new Error("no timestamp in stile-signature");
  if (Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) throw new Error("timestamp too old or too new");
  const expected = crypto.createHmac("sha256", key).update(`${timestamp}.`).update(rawBody).digest();
  const matches = signatures.some((hex) => {
    const given = Buffer.from(hex, "hex");
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
  if (!matches) throw new Error("no signature matches");
  return JSON.parse(rawBody.toString("utf8"));
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/webhooks") {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let event;
    try {
      event = verify(Buffer.concat(chunks), req.headers["stile-signature"], secret);
    } catch (err) {
      console.log(`rejected: ${err.message}`);
      res.writeHead(400, { "content-type": "text/plain" }).end("invalid signature\n");
      return;
    }
    // Answer first; do the work after (a slow answer is a failed delivery, retried).
    res.writeHead(200).end();
    if (seen.has(event.id)) {
      console.log(`duplicate ${event.id}`);
      return;
    }
    seen.add(event.id);
    console.log(`verified ${event.id} ${event.type}`);
  });
});

server.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}/webhooks`);
});

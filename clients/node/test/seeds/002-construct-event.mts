// Seed 002, "Using constructEvent() (low-level)": verbatim after the first two lines.
import Stile from "@stile/node";
const stile = new Stile(process.env.STILE_API_KEY!);
const event = stile.webhooks.constructEvent(
  rawBody,           // string or Buffer — the unmodified request body
  signatureHeader,   // the stile-signature header value
  webhookSecret,     // your endpoint's signing secret
);

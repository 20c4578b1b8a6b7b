// Seed 002 (webhooks guide), "Setup": verbatim after the first two lines.
import Stile from "@stile/node";
const stile = new Stile(process.env.STILE_API_KEY!);
const endpoint = await stile.webhookEndpoints.create({
  url: "https://yourapp.com/api/webhooks",
  enabled_events: ["verification_session.verified", "verification_session.failed"],
});

// Save endpoint.secret to your environment variables — it's only shown once

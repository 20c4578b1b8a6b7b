// Seed 000, "Delete an endpoint": verbatim after the first two lines.
import Stile from "@stile/node";
const stile = new Stile(process.env.STILE_API_KEY!);
await stile.webhookEndpoints.del("we_abc123");

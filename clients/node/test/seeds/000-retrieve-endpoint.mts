// Seed 000, "Retrieve an endpoint": verbatim after the first two lines.
import Stile from "@stile/node";
const stile = new Stile(process.env.STILE_API_KEY!);
const endpoint = await stile.webhookEndpoints.retrieve("we_abc123");

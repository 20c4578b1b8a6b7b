// Seed 000, "List endpoints": verbatim after the first two lines.
import Stile from "@stile/node";
const stile = new Stile(process.env.STILE_API_KEY!);
const { data } = await stile.webhookEndpoints.list();

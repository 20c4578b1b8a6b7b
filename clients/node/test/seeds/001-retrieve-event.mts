// Seed 001 (events API), "Retrieve an event": verbatim after the first two lines.
import Stile from "@stile/node";
const stile = new Stile(process.env.STILE_API_KEY!);
const event = await stile.events.retrieve("evt_abc123");
console.log(event.type);  // "verification_session.verified"
console.log(event.data);  // The verification session object

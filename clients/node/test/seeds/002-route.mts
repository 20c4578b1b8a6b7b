// Seed 002, app/api/webhooks/route.ts: verbatim (it has its own import line).
import Stile from "@stile/node";

const stile = new Stile(process.env.STILE_API_KEY!);

export async function POST(req: Request) {
  let event;
  try {
    event = await stile.webhooks.fromRequest(
      req,
      process.env.WEBHOOK_SECRET!,
    );
  } catch (err) {
    console.error("Webhook signature verification failed:", err);
    return new Response("Invalid signature", { status: 400 });
  }

  switch (event.type) {
    case "verification_session.verified":
      await handleVerified(event.data);
      break;
    case "verification_session.failed":
      await handleFailed(event.data);
      break;
    case "verification_session.expired":
      await handleExpired(event.data);
      break;
  }

  return Response.json({ received: true });
}

// Compiled by `npm run typecheck` only: the declarations describe the API as used.
import Stile, { StileError, StileSignatureVerificationError, type WebhookEndpoint, type Event } from '@stile/node';

const stile = new Stile(process.env.STILE_API_KEY!, { baseURL: 'http://127.0.0.1:8787', maxRetries: 1, app: 'acme' });
const other = new Stile({ apiKey: 'vk_test_x', timeout: 5_000 });

async function usage(): Promise<void> {
  const endpoint = await stile.webhookEndpoints.create({ url: 'https://a.example/h', enabled_events: ['*'] });
  const secret: string = endpoint.secret;
  const page = await stile.webhookEndpoints.list({ limit: 3 });
  const first: WebhookEndpoint | undefined = page.data[0];
  const more: boolean = page.has_more;
  for await (const event of stile.events.list({ limit: 100, type: 'a.b' })) {
    const type: string = event.type;
  }
  const event: Event = await stile.events.create({ type: 'invoice.paid', data: { id: 'in_1' } });
  await stile.withApp('globex').events.retrieve(event.id);
  const deliveries = await stile.webhookEndpoints.listDeliveries(endpoint.id, { limit: 10 });
  for (const delivery of deliveries.data) {
    const status: number | null = delivery.response_status;
  }
  await stile.testHelpers.verificationSessions.verify('vks_1');
  const session = await stile.verificationSessions.create({ type: 'document' });
  const app = await other.apps.create({ name: 'Acme', uid: 'acme' });
  const portal = await other.apps.createPortalSession(app.id, { expires_in: '2h' });
  const url: string = portal.url;
  try {
    await stile.webhookEndpoints.del('we_x');
  } catch (err) {
    if (err instanceof StileError) {
      const code: string | undefined = err.code;
      const status: number | undefined = err.statusCode;
    }
  }
  const verified = stile.webhooks.constructEvent('{}', 't=1,v1=00', secret, 300);
  const fromRequest = await stile.webhooks.fromRequest(new Request('http://x'), secret);
  const data: Record<string, any> = fromRequest.data;
  const error = new StileSignatureVerificationError('no');
  void [secret, first, more, session, url, verified, data, error];
}
void usage;

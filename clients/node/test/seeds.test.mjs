// The documentation's Node.js snippets (seeds 000–002), copied verbatim into test/seeds/
// (only the import line and the key from the environment added), compiled by tsc, and
// run against a real stile: as scripts where they are scripts, imported where they are
// a module (the route handler).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import Stile, { StileSignatureVerificationError } from '@stile/node';

import { KEY, startReceiver, startStile, until } from './helpers.mjs';

const built = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../build/seeds');
const run = promisify(execFile);

describe("the seeds' snippets, run as written", () => {
  let server;
  let stile;
  const env = () => ({ ...process.env, STILE_API_KEY: KEY, STILE_API_BASE: server.base });
  /** Runs a compiled snippet as a script: `{ code, stdout, stderr }`. */
  const script = async (name) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [path.join(built, `${name}.mjs`)], { env: env(), timeout: 20_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };

  before(async () => {
    server = await startStile();
    stile = new Stile(KEY, { baseURL: server.base });
  });
  after(() => server.stop());

  test('000 create an endpoint, then list endpoints', async () => {
    const created = await script('000-create-endpoint');
    assert.equal(created.code, 0, created.stderr);
    const secret = created.stdout.match(/^Webhook secret: (whsec_\S+)$/m);
    assert.ok(secret, created.stdout);
    const { data } = await stile.webhookEndpoints.list();
    const endpoint = data.find((e) => e.url === 'https://yourapp.com/api/webhooks' && e.description === 'Production webhook');
    assert.ok(endpoint, JSON.stringify(data));
    assert.deepEqual(endpoint.enabled_events, [
      'verification_session.verified',
      'verification_session.failed',
      'verification_session.expired',
    ]);
    const listed = await script('000-list-endpoints');
    assert.equal(listed.code, 0, listed.stderr);
  });

  test('000 and 001 snippets naming objects this server does not have end in a typed 404', async () => {
    for (const name of [
      '000-retrieve-endpoint',
      '000-update-endpoint',
      '000-delete-endpoint',
      '000-list-deliveries',
      '001-retrieve-event',
    ]) {
      const result = await script(name);
      assert.notEqual(result.code, 0, `${name} cannot succeed: no such object`);
      assert.match(result.stderr, /StileInvalidRequestError/, `${name}: ${result.stderr}`);
      assert.match(result.stderr, /(we|evt)_abc123/, `${name}: ${result.stderr}`);
      assert.match(result.stderr, /statusCode: 404/, `${name}: ${result.stderr}`);
    }
  });

  test('001 list events prints each type and time', async () => {
    const event = await stile.events.create({ type: 'verification_session.verified', data: { id: 'vks_1' } });
    const listed = await script('001-list-events');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^verification_session\\.verified ${event.created}$`, 'm'));
  });

  test('002 setup creates the endpoint', async () => {
    const before = (await stile.webhookEndpoints.list({ limit: 100 })).data.length;
    const result = await script('002-setup');
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await stile.webhookEndpoints.list({ limit: 100 })).data.length, before + 1);
  });

  test('002 route handler: a real delivery verifies, a tampered one is a 400', async () => {
    process.env.STILE_API_KEY = KEY;
    const handled = [];
    globalThis.handleVerified = async (data) => handled.push(['verified', data]);
    globalThis.handleFailed = async (data) => handled.push(['failed', data]);
    globalThis.handleExpired = async (data) => handled.push(['expired', data]);
    const { POST } = await import(pathToFileURL(path.join(built, '002-route.mjs')).href);
    const answers = [];
    const receiver = await startReceiver(async (req, body) => {
      const request = new Request(`http://127.0.0.1${req.url}`, { method: req.method, headers: req.headers, body });
      const response = await POST(request);
      answers.push(response.status);
      return { status: response.status, body: await response.text() };
    });
    try {
      const endpoint = await stile.webhookEndpoints.create({
        url: `${receiver.url}/api/webhooks`,
        enabled_events: ['verification_session.verified', 'verification_session.failed'],
      });
      process.env.WEBHOOK_SECRET = endpoint.secret;
      const session = await stile.verificationSessions.create({ type: 'identity', client_reference_id: 'user_123' });
      await stile.testHelpers.verificationSessions.process(session.id);
      await stile.testHelpers.verificationSessions.verify(session.id);
      await until(() => handled.length >= 1);
      assert.equal(handled[0][0], 'verified');
      assert.equal(handled[0][1].id, session.id);
      assert.equal(handled[0][1].client_reference_id, 'user_123');
      await until(async () => (await stile.webhookEndpoints.listDeliveries(endpoint.id)).data[0]?.status === 'succeeded');
      const delivery = (await stile.webhookEndpoints.listDeliveries(endpoint.id)).data[0];
      assert.equal(delivery.response_status, 200);
      assert.equal(delivery.response_body, '{"received":true}');

      const tampered = new Request('http://127.0.0.1/api/webhooks', {
        method: 'POST',
        headers: { 'stile-signature': receiver.requests[0].headers['stile-signature'] },
        body: receiver.requests[0].body.toString().replace('user_123', 'user_999'),
      });
      assert.equal((await POST(tampered)).status, 400);
    } finally {
      await receiver.close();
    }
  });

  test('002 constructEvent accepts the raw body stile sent and refuses a changed one', async () => {
    const receiver = await startReceiver();
    try {
      const endpoint = await stile.webhookEndpoints.create({ url: `${receiver.url}/raw`, enabled_events: ['*'] });
      await stile.events.create({ type: 'verification_session.failed', data: { id: 'vks_2' } });
      await receiver.waitFor(1);
      const request = receiver.requests[0];
      const snippet = pathToFileURL(path.join(built, '002-construct-event.mjs')).href;
      Object.assign(globalThis, {
        rawBody: request.body.toString(),
        signatureHeader: request.headers['stile-signature'],
        webhookSecret: endpoint.secret,
      });
      await import(`${snippet}?case=as-sent`);
      globalThis.rawBody = request.body.toString().replace('vks_2', 'vks_3');
      await assert.rejects(import(`${snippet}?case=changed`), StileSignatureVerificationError);
    } finally {
      await receiver.close();
    }
  });
});

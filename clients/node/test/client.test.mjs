// The client against a real stile: every resource method, lists and their pages, typed
// errors, application scoping, and retries (against a stand-in server that fails first).

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import Stile, {
  StileAuthenticationError,
  StileConnectionError,
  StileError,
  StileInvalidRequestError,
  StilePermissionError,
} from '@stile/node';

import { KEY, startReceiver, startStile, until } from './helpers.mjs';

const VERIFIED = 'verification_session.verified';

describe('against a real stile', () => {
  let server;
  let stile;
  before(async () => {
    server = await startStile({ STILE_EVENTS_CUSTOM_TYPES: 'invoice.paid' });
    stile = new Stile(KEY, { baseURL: server.base });
  });
  after(() => server.stop());

  test('webhook endpoints: create, retrieve, update, list (every page), delete', async () => {
    const created = await stile.webhookEndpoints.create({
      url: 'https://example.com/hooks',
      enabled_events: [VERIFIED],
      description: 'Production webhook',
      metadata: { team: 'identity' },
    });
    assert.equal(created.object, 'webhook_endpoint');
    assert.match(created.secret, /^whsec_/);
    assert.deepEqual(created.enabled_events, [VERIFIED]);

    const retrieved = await stile.webhookEndpoints.retrieve(created.id);
    assert.equal(retrieved.url, 'https://example.com/hooks');
    assert.equal(retrieved.secret, undefined, 'the secret is shown once');

    const updated = await stile.webhookEndpoints.update(created.id, { enabled_events: ['*'], status: 'disabled' });
    assert.deepEqual([updated.enabled_events, updated.status], [['*'], 'disabled']);

    const ids = [created.id];
    for (let i = 0; i < 4; i++) {
      ids.push((await stile.webhookEndpoints.create({ url: `https://example.com/h${i}`, enabled_events: ['*'] })).id);
    }
    const page = await stile.webhookEndpoints.list({ limit: 2 });
    assert.equal(page.data.length, 2);
    assert.equal(page.has_more, true);
    const seen = [];
    for await (const endpoint of stile.webhookEndpoints.list({ limit: 2 })) seen.push(endpoint.id);
    assert.deepEqual(seen.sort(), [...ids].sort(), 'iteration walks every page once');

    const deleted = await stile.webhookEndpoints.del(created.id);
    assert.deepEqual(deleted, { id: created.id, object: 'webhook_endpoint', deleted: true });
    await assert.rejects(stile.webhookEndpoints.retrieve(created.id), (err) => {
      assert.ok(err instanceof StileInvalidRequestError && err instanceof StileError);
      assert.equal(err.statusCode, 404);
      assert.equal(err.code, 'resource_missing');
      assert.equal(err.type, 'invalid_request_error');
      return true;
    });
  });

  test('a bad parameter is a typed error naming it', async () => {
    await assert.rejects(stile.webhookEndpoints.create({ url: 'ftp://example.com', enabled_events: ['*'] }), (err) => {
      assert.ok(err instanceof StileInvalidRequestError);
      assert.equal(err.param, 'url');
      assert.equal(err.code, 'parameter_invalid');
      assert.match(err.message, /url/);
      return true;
    });
    const noKey = new Stile('vk_test_not_a_key_000000000000', { baseURL: server.base });
    await assert.rejects(noKey.events.list(), (err) => err instanceof StileAuthenticationError && err.statusCode === 401);
  });

  test('events: publish, retrieve, list with filters and pages, resend, deliveries to a receiver that verifies', async () => {
    // An application of its own, so the other tests' endpoints get none of these events.
    await new Stile(KEY, { baseURL: server.base }).apps.create({ name: 'Events', uid: 'events-test' });
    const stile = new Stile(KEY, { baseURL: server.base, app: 'events-test' });
    let endpointSecret;
    const verified = [];
    const receiver = await startReceiver((req, body) => {
      verified.push(stile.webhooks.constructEvent(body, req.headers['stile-signature'], endpointSecret));
      return { body: '{"received":true}' };
    });
    try {
      const endpoint = await stile.webhookEndpoints.create({ url: `${receiver.url}/hooks`, enabled_events: ['invoice.paid'] });
      endpointSecret = endpoint.secret;
      const event = await stile.events.create({ type: 'invoice.paid', data: { id: 'in_1', amount: 5 } });
      assert.equal(event.object, 'event');
      assert.equal(event.pending_webhooks, 1);
      await receiver.waitFor(1);
      assert.equal(verified[0].id, event.id);
      assert.deepEqual(verified[0].data, { id: 'in_1', amount: 5 });

      const retrieved = await stile.events.retrieve(event.id);
      assert.equal(retrieved.type, 'invoice.paid');
      for (let i = 0; i < 3; i++) await stile.events.create({ type: 'invoice.paid', data: { seq: i } });
      await stile.events.create({ type: VERIFIED, data: { id: 'vks_x' } });
      const invoices = [];
      for await (const e of stile.events.list({ type: 'invoice.paid', limit: 2 })) invoices.push(e.id);
      assert.equal(invoices.length, 4);
      assert.ok(invoices.includes(event.id));
      const sessions = await stile.events.list({ session_id: 'vks_x' });
      assert.deepEqual(sessions.data.map((e) => e.type), [VERIFIED]);

      await until(async () => (await stile.events.retrieve(event.id)).pending_webhooks === 0);
      const deliveries = await stile.webhookEndpoints.listDeliveries(endpoint.id, { limit: 10 });
      const first = deliveries.data.find((d) => d.event_id === event.id);
      assert.deepEqual([first.status, first.response_status, first.attempt], ['succeeded', 200, 1]);
      const one = await stile.webhookEndpoints.retrieveDelivery(endpoint.id, first.id);
      assert.equal(one.id, first.id);
      const byEvent = await stile.events.listDeliveries(event.id);
      assert.equal(byEvent.data[0].endpoint_id, endpoint.id);

      const resent = await stile.events.resend(event.id);
      assert.ok(resent);
      await receiver.waitFor(5);
      assert.equal(verified.filter((e) => e.id === event.id).length, 2);

      const ping = await stile.webhookEndpoints.test(endpoint.id);
      assert.equal(ping.status, 'succeeded');
      const recovery = await stile.webhookEndpoints.recover(endpoint.id, { since: 0, dry_run: true });
      assert.deepEqual([recovery.object, recovery.events], ['webhook_endpoint_recovery', 0]);

      // Rotation with a grace period: deliveries carry both signatures, either verifies.
      const rotated = await stile.webhookEndpoints.rotateSecret(endpoint.id, { expires_in: '1h' });
      assert.notEqual(rotated.secret, endpointSecret);
      const old = endpointSecret;
      endpointSecret = rotated.secret;
      await stile.events.create({ type: 'invoice.paid', data: { after: 'rotation' } });
      await receiver.waitFor(7);
      const last = receiver.requests.at(-1);
      assert.equal(stile.webhooks.constructEvent(last.body, last.headers['stile-signature'], old).data.after, 'rotation');
      assert.equal((await stile.webhookEndpoints.revealSecret(endpoint.id)).secret, rotated.secret);
    } finally {
      await receiver.close();
    }
  });

  test('verification sessions and their test helpers', async () => {
    const session = await stile.verificationSessions.create({ type: 'document', client_reference_id: 'user_1' });
    assert.equal(session.status, 'requires_input');
    assert.equal((await stile.testHelpers.verificationSessions.process(session.id)).status, 'processing');
    assert.equal((await stile.testHelpers.verificationSessions.verify(session.id)).status, 'verified');
    assert.equal((await stile.verificationSessions.retrieve(session.id)).status, 'verified');
    const listed = await stile.verificationSessions.list({ limit: 5 });
    assert.ok(listed.data.some((s) => s.id === session.id));
    const types = (await stile.events.list({ session_id: session.id })).data.map((e) => e.type);
    assert.ok(types.includes(VERIFIED), String(types));
    const other = await stile.verificationSessions.create({ type: 'identity' });
    assert.equal((await stile.verificationSessions.cancel(other.id)).status, 'cancelled');
    const helpers = stile.testHelpers.verificationSessions;
    const third = await stile.verificationSessions.create({ type: 'identity' });
    await helpers.process(third.id);
    assert.equal((await helpers.requireInput(third.id)).status, 'requires_input');
    await helpers.process(third.id);
    assert.equal((await helpers.fail(third.id)).status, 'failed');
    const fourth = await stile.verificationSessions.create({ type: 'document' });
    assert.equal((await helpers.expire(fourth.id)).status, 'expired');
  });

  test('applications: scoped clients see only their own', async () => {
    const app = await stile.apps.create({ name: 'Acme', uid: 'acme' });
    assert.equal(app.object, 'application');
    assert.equal((await stile.apps.retrieve('acme')).id, app.id);
    assert.equal((await stile.apps.update(app.id, { name: 'Acme Inc.' })).name, 'Acme Inc.');
    const acme = new Stile(KEY, { baseURL: server.base, app: 'acme' });
    const endpoint = await acme.webhookEndpoints.create({ url: 'https://acme.example/h', enabled_events: ['*'] });
    assert.deepEqual((await acme.webhookEndpoints.list()).data.map((e) => e.id), [endpoint.id]);
    await assert.rejects(stile.webhookEndpoints.retrieve(endpoint.id), (err) => err.statusCode === 404);
    assert.equal((await stile.withApp(app.id).webhookEndpoints.retrieve(endpoint.id)).id, endpoint.id);
    const portal = await stile.apps.createPortalSession('acme', { read_only: true });
    assert.match(portal.url, /\/portal\/#token=stile_portal_/);
    const apps = [];
    for await (const a of stile.apps.list({ limit: 1 })) apps.push(a.id);
    assert.ok(apps.includes(app.id) && apps.length >= 2, String(apps));
    // A portal token is no API key: permission errors are typed too.
    const portalClient = new Stile(portal.token, { baseURL: server.base });
    await assert.rejects(portalClient.apps.list(), (err) => err instanceof StilePermissionError && err.statusCode === 403);
    assert.deepEqual(await stile.apps.del('acme'), { id: app.id, object: 'application', deleted: true });
  });

  test('event types through the API', async () => {
    const created = await stile.eventTypes.create({
      name: 'order.paid',
      description: 'An order was paid.',
      schema: { type: 'object', required: ['id'] },
      example: { id: 'ord_1' },
    });
    assert.equal(created.source, 'api');
    await assert.rejects(stile.events.create({ type: 'order.paid', data: {} }), (err) => err.param === 'data');
    assert.equal((await stile.eventTypes.retrieve('order.paid')).description, 'An order was paid.');
    const updated = await stile.eventTypes.update('order.paid', { description: 'Paid in full.', schema: null });
    assert.deepEqual([updated.description, updated.schema], ['Paid in full.', null]);
    assert.equal((await stile.events.create({ type: 'order.paid', data: {} })).type, 'order.paid');
    assert.equal((await stile.eventTypes.archive('order.paid')).archived, true);
    const listed = await stile.eventTypes.list({ include_archived: true });
    assert.ok(listed.data.some((t) => t.name === 'order.paid' && t.archived));
  });

  test('the CommonJS entry is the same client', () => {
    const require = createRequire(import.meta.url);
    const Required = require('@stile/node');
    assert.equal(Required, Stile);
    assert.equal(Required.default, Stile);
    assert.equal(Required.StileError, StileError);
  });
});

test('retryDelivery runs a scheduled retry now', async () => {
  const server = await startStile({ STILE_DELIVERY_RETRY_SCHEDULE: '1h' });
  let calls = 0;
  const receiver = await startReceiver(() => ((calls += 1) === 1 ? { status: 500 } : {}));
  try {
    const stile = new Stile(KEY, { baseURL: server.base });
    const endpoint = await stile.webhookEndpoints.create({ url: `${receiver.url}/h`, enabled_events: ['*'] });
    await stile.events.create({ type: VERIFIED, data: {} });
    await until(async () => (await stile.webhookEndpoints.listDeliveries(endpoint.id, { status: 'retrying' })).data.length === 1);
    const retrying = (await stile.webhookEndpoints.listDeliveries(endpoint.id, { status: 'retrying' })).data[0];
    await stile.webhookEndpoints.retryDelivery(endpoint.id, retrying.id);
    await receiver.waitFor(2);
    await until(async () => (await stile.webhookEndpoints.listDeliveries(endpoint.id, { status: 'succeeded' })).data.length === 1);
  } finally {
    await receiver.close();
    await server.stop();
  }
});

describe('retries', () => {
  test('5xx and 429 are retried with one Idempotency-Key, honouring Retry-After', async () => {
    let calls = 0;
    const fake = await startReceiver(() => {
      calls += 1;
      if (calls === 1) return { status: 503, body: '{"error":{"type":"api_error","message":"busy"}}' };
      if (calls === 2) return { status: 429, headers: { 'retry-after': '0' }, body: '{"error":{"message":"slow down"}}' };
      return { body: '{"id":"evt_1","object":"event"}' };
    });
    try {
      const stile = new Stile(KEY, { baseURL: fake.url, maxRetries: 2 });
      const event = await stile.events.create({ type: VERIFIED, data: {} });
      assert.equal(event.id, 'evt_1');
      const keys = fake.requests.map((r) => r.headers['idempotency-key']);
      assert.equal(keys.length, 3);
      assert.ok(keys[0] && keys.every((k) => k === keys[0]), String(keys));
      // GETs are retried too, without a key; a 4xx is not retried.
      calls = 0;
      await stile.events.retrieve('evt_1');
      assert.equal(fake.requests.at(-1).headers['idempotency-key'], undefined);
      const failing = await startReceiver(() => ({ status: 400, body: '{"error":{"type":"invalid_request_error","message":"no"}}' }));
      const once = new Stile(KEY, { baseURL: failing.url });
      await assert.rejects(once.events.list(), StileInvalidRequestError);
      assert.equal(failing.requests.length, 1);
      await failing.close();
    } finally {
      await fake.close();
    }
  });

  test('an unreachable server is a StileConnectionError after the retries', async () => {
    const gone = await startReceiver();
    const url = gone.url;
    await gone.close();
    const stile = new Stile(KEY, { baseURL: url, maxRetries: 1 });
    const started = Date.now();
    await assert.rejects(stile.events.list(), (err) => err instanceof StileConnectionError && /could not be reached/.test(err.message));
    assert.ok(Date.now() - started >= 300, 'it waited before retrying');
  });

  test('the base URL comes from STILE_API_BASE, else a local stile', () => {
    const saved = process.env.STILE_API_BASE;
    try {
      process.env.STILE_API_BASE = 'http://127.0.0.1:9999/';
      assert.equal(new Stile(KEY)._baseURL, 'http://127.0.0.1:9999');
      delete process.env.STILE_API_BASE;
      assert.equal(new Stile(KEY)._baseURL, 'http://127.0.0.1:8787');
    } finally {
      if (saved === undefined) delete process.env.STILE_API_BASE;
      else process.env.STILE_API_BASE = saved;
    }
  });
});

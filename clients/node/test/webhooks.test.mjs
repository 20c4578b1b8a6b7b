// Signature verification on its own: what it accepts and what it refuses, each with a
// clear, typed error. (Real deliveries are verified in client.test.mjs and the seeds.)

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';

import Stile, { StileSignatureVerificationError } from '@stile/node';

const stile = new Stile('vk_test_unused');
const secret = 'whsec_' + crypto.randomBytes(32).toString('base64');
const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'invoice.paid', data: { amount: 5 } });
const now = () => Math.floor(Date.now() / 1000);
const sign = (key, t, payload = body) => crypto.createHmac('sha256', key).update(`${t}.${payload}`).digest('hex');

function refused(run, pattern) {
  assert.throws(run, (err) => {
    assert.ok(err instanceof StileSignatureVerificationError, String(err));
    assert.match(err.message, pattern);
    return true;
  });
}

test('a valid signature gives the event, from a string or a Buffer', () => {
  const t = now();
  const header = `t=${t},v1=${sign(secret, t)}`;
  assert.equal(stile.webhooks.constructEvent(body, header, secret).data.amount, 5);
  assert.equal(stile.webhooks.constructEvent(Buffer.from(body), header, secret).id, 'evt_1');
  assert.equal(stile.webhooks.constructEvent(body, stile.webhooks.generateTestHeaderString({ payload: body, secret }), secret).id, 'evt_1');
});

test('any of several v1 signatures may match (rotation grace)', () => {
  const t = now();
  const previous = 'whsec_previous';
  const header = `t=${t},v1=${sign(secret, t)},v1=${sign(previous, t)}`;
  assert.equal(stile.webhooks.constructEvent(body, header, previous).id, 'evt_1');
  assert.equal(stile.webhooks.constructEvent(body, header, secret).id, 'evt_1');
});

test('tampered bodies, wrong secrets, stale or future timestamps and bad headers are refused', () => {
  const t = now();
  const header = `t=${t},v1=${sign(secret, t)}`;
  refused(() => stile.webhooks.constructEvent(body.replace('5', '6'), header, secret), /No signature matches/);
  refused(() => stile.webhooks.constructEvent(body, header, 'whsec_other'), /No signature matches/);
  const old = t - 301;
  refused(() => stile.webhooks.constructEvent(body, `t=${old},v1=${sign(secret, old)}`, secret), /tolerance of 300 s/);
  assert.equal(stile.webhooks.constructEvent(body, `t=${old},v1=${sign(secret, old)}`, secret, 600).id, 'evt_1');
  const future = t + 3600;
  refused(() => stile.webhooks.constructEvent(body, `t=${future},v1=${sign(secret, future)}`, secret), /tolerance/);
  refused(() => stile.webhooks.constructEvent(body, undefined, secret), /No stile-signature header/);
  refused(() => stile.webhooks.constructEvent(body, `v1=${sign(secret, t)}`, secret), /no timestamp/);
  refused(() => stile.webhooks.constructEvent(body, `t=${t}`, secret), /no v1 signature/);
  refused(() => stile.webhooks.constructEvent(body, `t=${t},v1=zz`, secret), /No signature matches/);
  refused(() => stile.webhooks.constructEvent(JSON.parse(body), header, secret), /raw request body/);
  refused(() => stile.webhooks.constructEvent(body, header, ''), /No signing secret/);
});

test('fromRequest reads a Web Request', async () => {
  const t = now();
  const request = new Request('http://localhost/webhooks', {
    method: 'POST',
    headers: { 'stile-signature': `t=${t},v1=${sign(secret, t)}` },
    body,
  });
  assert.equal((await stile.webhooks.fromRequest(request, secret)).type, 'invoice.paid');
  const unsigned = new Request('http://localhost/webhooks', { method: 'POST', body });
  await assert.rejects(stile.webhooks.fromRequest(unsigned, secret), StileSignatureVerificationError);
});

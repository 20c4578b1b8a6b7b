// An endpoint's transformation in the endpoint form (the code, whether it runs, and *Try
// it* on a type's example or a pasted event) and on the endpoint's page (the version in
// force and the ones before it). The dashboard and the portal share both.

import { api } from '../api.js';
import { busy, errorBox, field, fill, h, jsonBlock, timeCell } from '../ui.js';
import { tryOn } from './try_on.js';

const EXAMPLE = `function handler(webhook) {
  // webhook: { method, url, headers, payload, eventType }
  webhook.payload = { text: webhook.eventType + ": " + webhook.payload.data.id };
  return webhook; // or set webhook.cancel = true to send nothing
}`;

/** The form's transformation field. `types`: those with an example to try on; `target()`
 * the URL and headers the form holds (what the handler receives). `value()` is
 * `undefined` (leave as it is), `null` (remove it) or `{code, enabled}`. */
export function transformationField(initial, types, target) {
  const current = initial && initial.transformation;
  const code = h('textarea', { name: 'transformation', rows: '6', spellcheck: 'false', class: 'code', placeholder: EXAMPLE });
  code.value = current ? current.code : '';
  const enabled = h('input', { type: 'checkbox', name: 'transformation_enabled', checked: current ? current.enabled : true });
  const { on, pasted, event } = tryOn(types, 'transformation', 'Try the transformation on', '{"type": "invoice.paid", "data": {"id": "in_1"}}');
  const result = h('div', { 'aria-live': 'polite', 'data-test': 'transformation-result' });
  const tryIt = h('button', { type: 'button', class: 'secondary small', 'data-test': 'transformation-try' }, 'Try it');
  tryIt.addEventListener('click', () => busy(tryIt, async () => {
    if (!code.value.trim()) return fill(result, errorBox(new Error('Write a handler to try first.')));
    const { url, headers } = target();
    const source = event();
    if (source instanceof Error) return fill(result, errorBox(source));
    const body = { code: code.value, url: url || undefined, headers: headers || undefined, ...source };
    try {
      fill(result, tryResult(await api('POST', '/v1/transformations/test', body)));
    } catch (err) {
      fill(result, errorBox(err));
    }
  }));
  const value = () => {
    const text = code.value;
    if (!text.trim()) return current ? null : undefined;
    return { code: text, enabled: enabled.checked };
  };
  const element = h('div', { class: 'transformation' },
    field('Transformation', code, 'Optional: JavaScript whose handler(webhook) may change the method, URL, headers and body of each request, or cancel it. Runs in a sandbox with no clock or network, within a time and memory limit.'),
    h('label', { class: 'check' }, enabled, ' Deliveries go through it'),
    h('div', { class: 'actions' }, h('span', {}, 'Try it on'), on, tryIt), pasted, result);
  return { element, value };
}

/** What a try made: the request, a cancel, or why nothing. */
function tryResult(tried) {
  if (tried.error) return h('p', { class: 'notice error', 'data-test': 'transformation-error' }, tried.error);
  if (tried.cancel) return h('p', { class: 'notice' }, 'It cancels: nothing would be sent for this event.');
  return h('div', { class: 'notice ok' },
    h('p', {}, h('strong', {}, tried.method), ' ', h('span', { class: 'url' }, tried.url)),
    Object.keys(tried.headers || {}).length ? jsonBlock(tried.headers) : null,
    jsonBlock(tried.payload));
}

/** The endpoint page's account of its transformation: the version in force, and a button
 * that lists the ones before it. */
export function transformationFacts(endpoint) {
  const t = endpoint.transformation;
  if (!t) return 'none: requests go as published';
  const earlier = h('div', { 'data-test': 'transformation-versions' });
  const show = h('button', { type: 'button', class: 'secondary small' }, 'Versions');
  show.addEventListener('click', () => busy(show, async () => {
    const versions = (await api('GET', `/v1/webhook_endpoints/${endpoint.id}/transformation/versions`)).data;
    fill(earlier, h('ol', { class: 'versions' }, versions.map((v) => h('li', {},
      h('p', {}, `Version ${v.version}${v.current ? ' (in force)' : ''} · ${v.enabled ? 'enabled' : 'disabled'} · saved by `,
        h('code', {}, v.saved_by), ' ', timeCell(v.saved_at)),
      h('pre', { class: 'code' }, v.code)))));
  }));
  return h('div', { 'data-test': 'transformation' },
    h('p', {}, `Version ${t.version}, ${t.enabled ? 'enabled' : 'disabled'}, saved by `, h('code', {}, t.updated_by), ' ', timeCell(t.updated_at), ' ', show),
    h('pre', { class: 'code' }, t.code), earlier);
}

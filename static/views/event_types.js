// Event types: the catalogue, each type with what it means, the schema of its data, and
// an example that can be sent to one endpoint. Shared by the dashboard and the app portal.

import { api } from '../api.js';
import { busy, emptyState, errorBox, fill, h, jsonBlock, pill } from '../ui.js';

/** The catalogue. */
export async function render(root) {
  const [types, endpoints] = await Promise.all([
    api('GET', '/v1/event_types').then((r) => r.data),
    api('GET', '/v1/webhook_endpoints?limit=100').then((r) => r.data),
  ]);
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Event types')),
    h('p', {}, 'What your endpoints can subscribe to. Each event carries an object in ', h('code', {}, 'data'),
      '; where a type has a schema, every event of it matches that schema.'),
    types.length === 0
      ? emptyState('No event types.')
      : h('div', { class: 'catalogue' }, types.map((t) => h('section', { class: 'card', 'data-test': 'event-type', 'aria-labelledby': `type-${t.name}` },
        h('h2', { id: `type-${t.name}` }, h('code', {}, t.name)),
        h('p', {}, t.description || 'No description.'),
        t.alias_of ? h('p', { class: 'muted' }, `Another name for ${t.alias_of}.`) : null,
        t.example ? h('details', {}, h('summary', {}, 'Example data'), jsonBlock(t.example)) : null,
        t.schema ? h('details', {}, h('summary', {}, 'Schema'), jsonBlock(t.schema)) : null,
        t.example && !t.alias_of && endpoints.length ? sendExample(t.name, endpoints) : null))));
}

/** *Send example*: the type's example data to one chosen endpoint, now, and the outcome. */
function sendExample(type, endpoints) {
  const choice = h('select', { name: 'endpoint', 'aria-label': `Endpoint to send a ${type} example to` },
    endpoints.map((e) => h('option', { value: e.id }, e.name || e.url)));
  const result = h('div', { 'aria-live': 'polite' });
  const send = h('button', { type: 'button', class: 'secondary' }, 'Send example');
  send.addEventListener('click', () => busy(send, async () => {
    fill(result);
    try {
      const d = await api('POST', `/v1/webhook_endpoints/${choice.value}/test`, { event_type: type });
      fill(result, h('p', { 'data-test': 'example-result' }, pill(d.status), ' ',
        d.response_status ? `HTTP ${d.response_status}` : d.error, ` in ${d.duration_ms} ms. `,
        h('a', { href: `#/endpoints/${choice.value}/deliveries/${d.id}` }, 'See the request and response')));
    } catch (err) {
      fill(result, errorBox(err));
    }
  }));
  return h('div', {}, h('div', { class: 'actions' }, choice, send), result);
}

// Event types: the catalogue, each type with what it means, the schema of its data, and
// an example. Shared by the dashboard and the app portal.

import { api } from '../api.js';
import { emptyState, fill, h, jsonBlock } from '../ui.js';

/** The catalogue. */
export async function render(root) {
  const types = (await api('GET', '/v1/event_types')).data;
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Event types')),
    h('p', {}, 'What your endpoints can subscribe to. Each event carries an object in `data`; where a type has a schema, every event of it matches that schema.'),
    types.length === 0
      ? emptyState('No event types.')
      : h('div', { class: 'catalogue' }, types.map((t) => h('section', { class: 'card', 'data-test': 'event-type', 'aria-labelledby': `type-${t.name}` },
        h('h2', { id: `type-${t.name}` }, h('code', {}, t.name)),
        h('p', {}, t.description || 'No description.'),
        t.alias_of ? h('p', { class: 'muted' }, `Another name for ${t.alias_of}.`) : null,
        t.example ? h('details', {}, h('summary', {}, 'Example data'), jsonBlock(t.example)) : null,
        t.schema ? h('details', {}, h('summary', {}, 'Schema'), jsonBlock(t.schema)) : null))));
}

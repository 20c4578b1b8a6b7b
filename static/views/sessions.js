// Verification sessions: create a test session and drive it through its states with the
// test helpers, watching the events each move emits.

import { api, modeOfKey, currentKey, query } from '../api.js';
import { pagedList } from '../list.js';
import { busy, emptyState, errorBox, field, fill, h, patch, pill, table, timeCell, toast } from '../ui.js';

/** The moves and the states they start from (as in docs/stile-api.md's table). */
const MOVES = [
  ['process', 'Process', ['requires_input']],
  ['require_input', 'Require input', ['processing']],
  ['verify', 'Verify', ['requires_input', 'processing']],
  ['fail', 'Fail', ['requires_input', 'processing']],
  ['expire', 'Expire', ['requires_input', 'processing']],
  ['cancel', 'Cancel', ['requires_input', 'processing']],
];

/** The sessions page. */
export async function render(root) {
  const live = modeOfKey(currentKey()) === 'live';
  const type = h('select', { name: 'type' }, h('option', { value: 'identity' }, 'identity'), h('option', { value: 'document' }, 'document'));
  const reference = h('input', { type: 'text', name: 'client_reference_id', placeholder: 'user_123' });
  const error = h('div', { 'aria-live': 'polite' });
  const create = h('form', { class: 'card form', 'aria-label': 'New verification session' },
    h('h2', {}, 'New session'),
    h('p', {}, 'Each move below emits its verification_session.* event to the endpoints subscribed to it.'),
    h('div', { class: 'row' }, field('Type', type), field('Client reference', reference)),
    error,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create session')));
  const listSlot = h('div', {});
  const eventsSlot = h('section', { 'aria-live': 'polite' });
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Verification sessions')), create, listSlot, eventsSlot);

  let selected = null;
  const list = pagedList(listSlot, {
    load: (after) => api('GET', `/v1/verification_sessions${query({ limit: 10, starting_after: after })}`),
    render: (items) => table('Verification sessions', ['Session', 'Type', 'Status', 'Created', 'Moves'], items.map((s) => [
      h('button', { type: 'button', class: 'link', onclick: () => select(s.id) }, s.id),
      s.type,
      pill(s.status),
      timeCell(s.created),
      h('div', { class: 'moves' }, MOVES.filter(([, , from]) => from.includes(s.status)).map(([action, label]) => h('button', {
        type: 'button', class: 'secondary small', 'data-action': action, 'data-key': action,
        onclick: (e) => busy(e.currentTarget, () => move(s.id, action)),
      }, label))),
    ]), (i) => ({ 'data-test': 'session-row', 'data-key': items[i].id })),
    empty: () => emptyState('No sessions yet.', h('p', {}, live
      ? 'Live sessions are created by your integration; the test helpers that drive them work only with a test key.'
      : 'Create one above, or run stile trigger verification_session.verified.')),
  });

  async function move(id, action) {
    const path = action === 'cancel'
      ? `/v1/verification_sessions/${id}/cancel`
      : `/v1/test_helpers/verification_sessions/${id}/${action}`;
    const session = await api('POST', path, {});
    toast(`${id} is now ${session.status}.`);
    selected = id;
    await Promise.all([list.refresh(), drawEvents()]);
  }

  async function select(id) {
    selected = id;
    await drawEvents();
  }

  async function drawEvents() {
    if (!selected) return;
    const events = await api('GET', `/v1/events${query({ session_id: selected, limit: 20 })}`);
    patch(eventsSlot, h('h2', {}, 'Events of ', h('code', {}, selected)),
      events.data.length === 0 ? h('p', { class: 'muted' }, 'None yet.')
        : table('Events of the session', ['Type', 'Event', 'Pending webhooks', 'Created'], events.data.map((e) => [
          h('a', { href: `#/events/${e.id}` }, e.type), h('code', {}, e.id), String(e.pending_webhooks), timeCell(e.created),
        ]), (i) => ({ 'data-test': 'session-event', 'data-key': events.data[i].id })));
  }

  create.addEventListener('submit', async (e) => {
    e.preventDefault();
    fill(error);
    const button = create.querySelector('button[type=submit]');
    await busy(button, async () => {
      try {
        const body = { type: type.value };
        if (reference.value.trim()) body.client_reference_id = reference.value.trim();
        const session = await api('POST', '/v1/verification_sessions', body);
        selected = session.id;
        reference.value = '';
        await Promise.all([list.reset(), drawEvents()]);
      } catch (err) {
        fill(error, errorBox(err));
      }
    });
  });

  await list.refresh();
  return { refresh: () => Promise.all([list.refresh(), drawEvents()]) };
}

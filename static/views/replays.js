// Replays: the list with each one's progress, the form that counts what a query matches
// (a dry run) and then starts it, and one replay's page (its counts, its query, Cancel
// while it runs). The dashboard and the portal share them; they only read and ask the
// API, and keep no timer: the router refreshes the page on screen.

import { api, query } from '../api.js';
import { loading, pagedList } from '../list.js';
import { busy, emptyState, errorBox, field, fill, formatTime, h, jsonBlock, patch, pill, table, timeCell, toast, unixOf } from '../ui.js';
import { typeCheck } from './endpoints.js';
import { filterField } from './filter_field.js';

/** The deliveries a replay may ask for (`status`), and how the form and the page say it. */
const STATUSES = [
  ['failed', 'Failed for good', 'failed deliveries'],
  ['never_attempted', 'Never attempted (missed while the endpoint was disabled)', 'never-attempted deliveries'],
  ['all', 'All finished or skipped', 'all deliveries'],
];

/** The application's endpoints (the first 100, as the other pages list them). */
async function listEndpoints() {
  return (await api('GET', '/v1/webhook_endpoints?limit=100')).data;
}

/** How far a replay has gone through what it matched: a bar and the counts in words. */
function progress(r) {
  const done = r.sent + r.skipped;
  return h('div', { class: 'progress', 'data-test': 'replay-progress' },
    h('progress', { max: Math.max(r.matched, 1), value: r.matched ? done : 0, 'aria-label': 'Progress' }),
    h('span', {}, `${r.sent} of ${r.matched} sent`, r.skipped ? `, ${r.skipped} skipped` : ''));
}

/** The replay list, and the form for a new one (`?new=1`, `&endpoint=` to preselect one). */
export async function renderList(root, _params, search) {
  const formSlot = h('div', {});
  const listSlot = h('div', {}, loading());
  const newButton = h('button', { type: 'button', 'aria-expanded': 'false' }, 'New replay');
  newButton.addEventListener('click', () => openForm(null));
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Replays'), newButton),
    h('p', { class: 'muted' }, 'A replay sends the deliveries a query matches again, with the same event ids and bodies.'),
    formSlot, listSlot);

  const list = pagedList(listSlot, {
    load: (after) => api('GET', `/v1/replays${query({ limit: 20, starting_after: after })}`),
    render: (items) => table('Replays', ['Replay', 'Status', 'Progress', 'Matched', 'Sent', 'Succeeded', 'Failed', 'Created'],
      items.map((r) => [
        h('a', { href: `#/replays/${r.id}` }, h('code', {}, r.id)),
        pill(r.status),
        progress(r),
        String(r.matched),
        String(r.sent),
        String(r.succeeded),
        String(r.failed),
        timeCell(r.created),
      ]), (i) => ({ 'data-test': 'replay-row', 'data-key': items[i].id })),
    empty: () => emptyState('No replays yet.',
      h('p', {}, 'Use "New replay" to send failed deliveries again, for instance once an endpoint works again. It counts what matches before it sends.')),
  });

  async function openForm(endpoint) {
    newButton.setAttribute('aria-expanded', 'true');
    const form = await replayForm(endpoint, () => {
      fill(formSlot);
      newButton.setAttribute('aria-expanded', 'false');
    });
    fill(formSlot, form);
    form.querySelector('input, select').focus();
  }

  await list.refresh();
  if (search.get('new')) await openForm(search.get('endpoint'));
  return { refresh: list.refresh };
}

/**
 * The form: which deliveries (endpoints, event types, time range, status, content filter).
 * "Count" runs a dry run; "Start replay" sends what was counted (the query of the count
 * shown, so a later edit needs a new count) and opens the replay's page.
 */
async function replayForm(endpoint, cancel) {
  const [endpoints, catalogue] = await Promise.all([
    listEndpoints(),
    // Archived types too: their failed deliveries may still be worth sending again.
    api('GET', '/v1/event_types?include_archived=true'),
  ]);
  // Kayle's names are other names of built-in types: choosing the type finds both.
  const types = catalogue.data.filter((t) => !t.alias_of);
  const endpointBoxes = endpoints.map((e) => h('input', { type: 'checkbox', name: 'endpoint', value: e.id, checked: e.id === endpoint }));
  const typeBoxes = types.map((t) => h('input', { type: 'checkbox', name: 'event_type', value: t.name }));
  const after = h('input', { type: 'datetime-local', name: 'created_after' });
  const before = h('input', { type: 'datetime-local', name: 'created_before' });
  const status = h('select', { name: 'status' }, STATUSES.map(([value, text]) => h('option', { value }, text)));
  const filter = filterField(null, types.filter((t) => t.example && !t.archived),
    'Optional: only the events whose content this JSON filter takes (the language of an endpoint\'s filter).');

  // An API error names its parameter: it is shown by that field, else above the buttons.
  const error = h('div', { 'aria-live': 'polite' });
  const slot = (name) => h('div', { 'aria-live': 'polite', 'data-error-for': name });
  const slots = { endpoints: slot('endpoints'), event_types: slot('event_types'), created: slot('created'), status: slot('status'), filter: slot('filter') };
  const slotOf = (param) => {
    const name = String(param || '').split(/[.[]/)[0];
    return slots[name.startsWith('created_') ? 'created' : name] || error;
  };
  const showError = (err) => {
    const param = err.body && err.body.error ? err.body.error.param : null;
    fill(slotOf(param), errorBox(err));
  };
  const clearErrors = () => [error, ...Object.values(slots)].forEach((s) => fill(s));

  const result = h('div', { 'aria-live': 'polite' });
  const countButton = h('button', { type: 'submit', class: 'secondary' }, 'Count');
  const start = h('button', { type: 'button', disabled: true }, 'Start replay');
  const form = h('form', { class: 'card form', 'aria-label': 'New replay' },
    h('h2', {}, 'New replay'),
    h('fieldset', {}, h('legend', {}, 'Endpoints'),
      h('p', { class: 'hint' }, 'None ticked: every endpoint.'),
      endpoints.length === 0 ? h('p', { class: 'muted' }, 'No endpoints yet.') : null,
      h('div', { class: 'checks' }, endpoints.map((e, i) => h('label', { class: 'check check-type' }, endpointBoxes[i],
        h('span', { class: 'check-text' }, h('span', {}, e.name || e.url), e.name ? h('small', { class: 'muted' }, e.url) : null)))),
      slots.endpoints),
    h('fieldset', {}, h('legend', {}, 'Event types'),
      h('p', { class: 'hint' }, 'None ticked: every type.'),
      h('div', { class: 'checks' }, types.map((t, i) => typeCheck(t, typeBoxes[i]))),
      slots.event_types),
    h('div', { class: 'row' },
      field('Created from', after, 'Optional: local time.'),
      field('Created before', before, 'Optional: empty means now.')),
    slots.created,
    field('Deliveries', status),
    slots.status,
    filter.element,
    slots.filter,
    error,
    result,
    h('div', { class: 'actions' }, countButton, start, h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')));

  /** The request body the form describes, or an Error (the filter is not JSON). */
  function build() {
    const body = { status: status.value };
    const chosenEndpoints = endpointBoxes.filter((b) => b.checked).map((b) => b.value);
    if (chosenEndpoints.length) body.endpoints = chosenEndpoints;
    const chosenTypes = typeBoxes.filter((b) => b.checked).map((b) => b.value);
    if (chosenTypes.length) body.event_types = chosenTypes;
    const from = unixOf(after);
    if (from !== undefined) body.created_after = from;
    const to = unixOf(before);
    if (to !== undefined) body.created_before = to;
    const contentFilter = filter.value();
    if (contentFilter instanceof Error) return contentFilter;
    if (contentFilter !== null) body.filter = contentFilter;
    return body;
  }

  // The query the count on screen was made with; a count answered after the form changed
  // again is dropped (`generation`).
  let counted = null;
  let generation = 0;
  const QUERY_FIELDS = new Set(['endpoint', 'event_type', 'created_after', 'created_before', 'status', 'filter']);
  const changed = (e) => {
    if (!QUERY_FIELDS.has(e.target.name)) return;
    generation += 1;
    counted = null;
    start.disabled = true;
    if (result.hasChildNodes()) fill(result, h('p', { class: 'muted', 'data-test': 'replay-count' }, 'The query changed: count again.'));
  };
  form.addEventListener('input', changed);
  form.addEventListener('change', changed);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    const body = build();
    if (body instanceof Error) {
      fill(slots.filter, errorBox(body));
      return;
    }
    const mine = ++generation;
    counted = null;
    start.disabled = true;
    countButton.disabled = true;
    try {
      const estimate = await api('POST', '/v1/replays', { ...body, dry_run: true });
      if (mine !== generation) return;
      counted = body;
      start.disabled = estimate.matched === 0;
      fill(result, estimateView(estimate, new Map(endpoints.map((ep) => [ep.id, ep.name || ep.url]))));
    } catch (err) {
      if (mine === generation) {
        fill(result);
        showError(err);
      }
    } finally {
      countButton.disabled = false;
    }
  });

  start.addEventListener('click', async () => {
    if (!counted) return;
    const body = counted;
    clearErrors();
    start.disabled = true;
    try {
      const replay = await api('POST', '/v1/replays', body);
      toast(`Replay started: ${replay.matched} ${replay.matched === 1 ? 'delivery' : 'deliveries'} to send.`);
      location.hash = `#/replays/${replay.id}`;
    } catch (err) {
      showError(err);
      start.disabled = counted !== body;
    }
  });
  return form;
}

/** What a dry run found: how many match, and the newest ten. */
function estimateView(estimate, names) {
  const n = estimate.matched;
  const said = n === 0 ? 'No delivery matches.' : `${n} ${n === 1 ? 'delivery matches' : 'deliveries match'}.`;
  if (n === 0) return h('p', { class: 'notice', 'data-test': 'replay-count' }, said);
  return [
    h('p', { class: 'notice ok', 'data-test': 'replay-count' }, said,
      n > estimate.sample.length ? ` The newest ${estimate.sample.length}:` : ''),
    table('Matching deliveries', ['Event', 'Endpoint', 'Delivery', 'Created'], estimate.sample.map((m) => [
      h('a', { href: `#/events/${m.event_id}` }, m.event_type),
      h('a', { href: `#/endpoints/${m.endpoint_id}`, class: 'url' }, names.get(m.endpoint_id) || m.endpoint_id),
      pill(m.delivery_status),
      timeCell(m.created),
    ]), () => ({ 'data-test': 'replay-sample' })),
  ];
}

/** One replay: refreshed (by the router, every 2 s) while it runs or a cancelled one
 * still waits for the outcomes of what it queued, and left as it is after. */
export async function renderDetail(root, params) {
  const id = encodeURIComponent(params.id);
  const body = h('div', {});
  fill(root, h('p', {}, h('a', { href: '#/replays' }, '← Replays')), body);
  const names = new Map((await listEndpoints()).map((e) => [e.id, e.name || e.url]));

  let running = false;
  let settled = false;
  async function refresh() {
    const r = await api('GET', `/v1/replays/${id}`);
    running = r.status === 'running';
    settled = !running && r.succeeded + r.failed >= r.sent;
    const cancel = running ? h('button', {
      type: 'button', class: 'secondary', 'data-key': 'cancel',
      onclick: (e) => busy(e.currentTarget, async () => {
        await api('POST', `/v1/replays/${id}/cancel`, {});
        toast('Replay cancelled: it queues nothing more; what it queued still goes.');
        await refresh();
      }),
    }, 'Cancel') : null;
    const q = r.query;
    const [, said, words] = STATUSES.find(([value]) => value === q.status) || [q.status, q.status, q.status];
    const count = (label, value, test) => [h('dt', {}, label), h('dd', { 'data-test': test }, String(value))];
    patch(body,
      h('div', { class: 'view-head' }, h('h1', {}, `Replay of ${words}`), pill(r.status)),
      progress(r),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Replay'), h('dd', {}, h('code', {}, r.id)),
        count('Matched', r.matched, 'replay-matched'),
        count('Sent', r.sent, 'replay-sent'),
        count('Skipped', r.skipped, 'replay-skipped'),
        count('Succeeded', r.succeeded, 'replay-succeeded'),
        count('Failed', r.failed, 'replay-failed'),
        h('dt', {}, 'Created'), h('dd', {}, timeCell(r.created)),
        h('dt', {}, 'Finished'), h('dd', {}, timeCell(r.finished_at))),
      r.skipped ? h('p', { class: 'muted' }, 'Skipped: the event or the endpoint was gone, or the payload was past its undelivered window.') : null,
      h('div', { class: 'actions' }, cancel),
      h('h2', {}, 'Query'),
      h('dl', { class: 'facts', 'data-test': 'replay-query' },
        h('dt', {}, 'Endpoints'), h('dd', {}, q.endpoints.length
          ? h('ul', { class: 'type-list' }, q.endpoints.map((e) => h('li', {}, h('a', { href: `#/endpoints/${e}`, class: 'url' }, names.get(e) || e))))
          : 'any endpoint'),
        h('dt', {}, 'Event types'), h('dd', {}, q.event_types.length ? q.event_types.join(', ') : 'any type'),
        h('dt', {}, 'Created from'), h('dd', {}, q.created_after === null ? 'the first event' : formatTime(q.created_after)),
        h('dt', {}, 'Created before'), h('dd', {}, formatTime(q.created_before)),
        h('dt', {}, 'Deliveries'), h('dd', {}, said),
        h('dt', {}, 'Filter'), h('dd', {}, q.filter ? jsonBlock(q.filter) : 'none')));
  }
  await refresh();
  // An ended replay whose deliveries all have their outcome never changes: stop asking.
  return { refresh: () => (settled ? Promise.resolve() : refresh()) };
}

// Events: the filterable list, and one event with its JSON, pending_webhooks, and where
// it was delivered with what result; resend.

import { api, query } from '../api.js';
import { loading, pagedList } from '../list.js';
import { busy, emptyState, fill, h, jsonBlock, patch, pill, table, timeCell, toast, unixOf } from '../ui.js';

/** The event list with filters. */
export async function renderList(root, _params, search) {
  const types = (await api('GET', '/v1/event_types')).data.map((t) => t.name);
  const type = h('select', { id: 'filter-type', name: 'type' }, h('option', { value: '' }, 'Any type'),
    [...types, 'webhook_endpoint.test'].map((t) => h('option', { value: t, selected: search.get('type') === t }, t)));
  const after = h('input', { id: 'filter-after', type: 'datetime-local', name: 'created_after' });
  const before = h('input', { id: 'filter-before', type: 'datetime-local', name: 'created_before' });
  const session = h('input', { id: 'filter-session', type: 'text', name: 'session_id', placeholder: 'vks_...', value: search.get('session_id') || '' });
  const delivery = h('select', { id: 'filter-delivery', name: 'delivery_success' },
    h('option', { value: '' }, 'Any outcome'),
    h('option', { value: 'false', selected: search.get('delivery_success') === 'false' }, 'Not delivered everywhere yet'),
    h('option', { value: 'true', selected: search.get('delivery_success') === 'true' }, 'Delivered everywhere'));
  const content = h('input', { id: 'filter-content', type: 'search', name: 'filter', class: 'wide', placeholder: '{"data.customer": "cus_1"}', value: search.get('filter') || '' });
  const filters = h('form', { class: 'filters', 'aria-label': 'Filter events' },
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-type' }, 'Type'), type),
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-after' }, 'From'), after),
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-before' }, 'To'), before),
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-session' }, 'Session'), session),
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-delivery' }, 'Delivery'), delivery),
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-content', title: 'A content filter, as an endpoint\'s (docs/filters.md): a search' }, 'Content'), content),
    h('button', { type: 'submit', class: 'secondary' }, 'Filter'));
  const listSlot = h('div', {}, loading());
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Events')), filters, listSlot);
  const list = pagedList(listSlot, {
    load: (starting_after) => api('GET', `/v1/events${query({
      limit: 20, type: type.value, created_after: unixOf(after), created_before: unixOf(before),
      session_id: session.value.trim(), delivery_success: delivery.value, filter: content.value.trim(), starting_after,
    })}`),
    render: (items) => items.length === 0
      ? h('p', { class: 'muted', 'data-test': 'search-more' }, 'No match among the events read so far.')
      : table('Events', ['Type', 'Event', 'Pending webhooks', 'Created'], items.map((e) => [
      h('a', { href: `#/events/${e.id}` }, e.type),
      h('code', {}, e.id),
      String(e.pending_webhooks),
      timeCell(e.created),
    ]), (i) => ({ 'data-test': 'event-row', 'data-key': items[i].id })),
    empty: () => emptyState('No events match.',
      h('p', {}, 'Events appear when your application publishes them (POST /v1/events), when a verification session moves, or when you run ',
        h('code', {}, 'stile trigger verification_session.verified'), '.')),
  });
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    list.reset().catch(() => {});
  });
  await list.refresh();
  return { refresh: list.refresh };
}

/** One event. */
export async function renderDetail(root, params) {
  const id = encodeURIComponent(params.id);
  const body = h('div', {});
  fill(root, h('p', {}, h('a', { href: '#/events' }, '← Events')), body);
  const endpoints = new Map((await api('GET', '/v1/webhook_endpoints?limit=100')).data.map((e) => [e.id, e.url]));

  async function refresh() {
    const [event, deliveries] = await Promise.all([
      api('GET', `/v1/events/${id}`),
      api('GET', `/v1/events/${id}/deliveries`),
    ]);
    const resendAll = h('button', {
      type: 'button',
      onclick: (e) => busy(e.currentTarget, async () => {
        const resent = await api('POST', `/v1/events/${id}/resend`, {});
        toast(`Resent: ${resent.pending_webhooks} deliveries pending.`);
        await refresh();
      }),
    }, 'Resend to all subscribed endpoints');
    const rows = deliveries.data.map((d) => {
      const again = h('button', {
        type: 'button', class: 'secondary small',
        onclick: (e) => busy(e.currentTarget, async () => {
          await api('POST', `/v1/events/${id}/resend`, { endpoint: d.endpoint_id });
          toast('Resent to this endpoint.');
          await refresh();
        }),
      }, 'Resend');
      return [
        h('a', { href: `#/endpoints/${d.endpoint_id}` }, endpoints.get(d.endpoint_id) || d.endpoint_id),
        String(d.attempt),
        pill(d.status),
        d.response_status ? `HTTP ${d.response_status}` : (d.error || '—'),
        h('a', { href: `#/endpoints/${d.endpoint_id}/deliveries/${d.id}` }, timeCell(d.created)),
        endpoints.has(d.endpoint_id) ? again : '',
      ];
    });
    patch(body,
      h('div', { class: 'view-head' }, h('h1', {}, event.type)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Event'), h('dd', {}, h('code', {}, event.id)),
        h('dt', {}, 'Created'), h('dd', {}, timeCell(event.created)),
        h('dt', {}, 'Pending webhooks'), h('dd', { 'data-test': 'pending-webhooks' }, String(event.pending_webhooks))),
      h('div', { class: 'actions' }, resendAll),
      h('h2', {}, 'Deliveries'),
      rows.length === 0
        ? h('p', { class: 'muted' }, 'No endpoint was subscribed to this event when it was published.')
        : table('Deliveries of this event', ['Endpoint', 'Attempt', 'Status', 'Response', 'Time', ''], rows,
          (i) => ({ 'data-key': deliveries.data[i].id })),
      deliveries.has_more ? h('p', { class: 'muted' }, 'Showing the newest 100 attempts.') : null,
      h('h2', {}, 'Data'), jsonBlock(event.data));
  }
  await refresh();
  return { refresh };
}

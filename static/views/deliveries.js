// Deliveries: every attempt of the application across its endpoints (the Deliveries
// page), an endpoint's own (the filterable, paginated table of its page), and one
// attempt's detail with the request sent and the response received; retry now and resend.

import { api, query } from '../api.js';
import { loading, pagedList } from '../list.js';
import { busy, emptyState, fill, h, jsonBlock, patch, pill, table, timeCell, toast } from '../ui.js';

const STATUSES = ['pending', 'succeeded', 'retrying', 'failed'];

/** The deliveries section of an endpoint's page; returns { refresh, reset }. */
export async function deliveriesPanel(slot, endpointId) {
  const status = h('select', { name: 'status', id: 'delivery-status' },
    h('option', { value: '' }, 'All'), STATUSES.map((s) => h('option', { value: s }, s)));
  const listSlot = h('div', {}, loading());
  fill(slot,
    h('div', { class: 'view-head' }, h('h2', { id: 'deliveries-title' }, 'Deliveries'),
      h('div', { class: 'inline-field' }, h('label', { for: 'delivery-status' }, 'Status'), status)),
    listSlot);
  const list = pagedList(listSlot, {
    load: (after) => api('GET', `/v1/webhook_endpoints/${encodeURIComponent(endpointId)}/deliveries${query({
      limit: 20, status: status.value, starting_after: after,
    })}`),
    render: (items) => table('Deliveries', ['Event type', 'Attempt', 'Status', 'Response', 'Duration', 'Time', 'Next retry'],
      items.map((d) => [
        h('a', { href: `#/endpoints/${endpointId}/deliveries/${d.id}` }, d.event_type),
        String(d.attempt),
        pill(d.status),
        d.response_status ? `HTTP ${d.response_status}` : (d.error || '—'),
        d.duration_ms === null ? '—' : `${d.duration_ms} ms`,
        timeCell(d.created),
        // Only a retry still to come: a made one's time is history.
        d.status === 'retrying' && d.next_retry_at ? timeCell(d.next_retry_at) : '—',
      ]), (i) => ({ 'data-test': 'delivery-row', 'data-index': i, 'data-key': items[i].id })),
    empty: () => emptyState(status.value ? `No ${status.value} deliveries.` : 'No deliveries yet.',
      h('p', {}, 'Use "Send test" above, publish an event, or run ',
        h('code', {}, 'stile trigger verification_session.verified'), '.')),
  });
  status.addEventListener('change', () => list.reset().catch(() => {}));
  await list.refresh();
  return list;
}

/**
 * Every delivery attempt of the application, newest first, filterable by status, event
 * type and endpoint (`?status=&event_type=&endpoint=` in the hash keeps the filters).
 */
export async function renderAll(root, _params, search) {
  const [types, endpoints] = await Promise.all([
    api('GET', '/v1/event_types'),
    api('GET', '/v1/webhook_endpoints?limit=100'),
  ]);
  const urls = new Map(endpoints.data.map((e) => [e.id, e.name || e.url]));
  const status = h('select', { id: 'filter-status', name: 'status' }, h('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => h('option', { value: s, selected: search.get('status') === s }, s)));
  // Kayle's names are other names of built-in types: filtering by the type finds both.
  const typeNames = types.data.filter((t) => !t.alias_of).map((t) => t.name);
  const type = h('select', { id: 'filter-type', name: 'event_type' }, h('option', { value: '' }, 'Any type'),
    [...typeNames, 'webhook_endpoint.test'].map((t) => h('option', { value: t, selected: search.get('event_type') === t }, t)));
  const endpoint = h('select', { id: 'filter-endpoint', name: 'endpoint' }, h('option', { value: '' }, 'Any endpoint'),
    endpoints.data.map((e) => h('option', { value: e.id, selected: search.get('endpoint') === e.id }, e.name || e.url)));
  const filters = h('form', { class: 'filters', 'aria-label': 'Filter deliveries' },
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-status' }, 'Status'), status),
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-type' }, 'Type'), type),
    h('div', { class: 'inline-field' }, h('label', { for: 'filter-endpoint' }, 'Endpoint'), endpoint),
    h('button', { type: 'submit', class: 'secondary' }, 'Filter'));
  const listSlot = h('div', {}, loading());
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Deliveries')),
    h('p', { class: 'muted' }, 'Every attempt to send an event to one of your endpoints, newest first.'),
    filters, listSlot);
  const list = pagedList(listSlot, {
    load: (after) => api('GET', `/v1/deliveries${query({
      limit: 20, status: status.value, event_type: type.value, endpoint: endpoint.value, starting_after: after,
    })}`),
    render: (items) => table('Deliveries', ['Time', 'Endpoint', 'Event type', 'Attempt', 'Status', 'Response'],
      items.map((d) => [
        timeCell(d.created),
        h('a', { href: `#/endpoints/${d.endpoint_id}`, class: 'url' }, urls.get(d.endpoint_id) || d.endpoint_id),
        h('a', { href: `#/endpoints/${d.endpoint_id}/deliveries/${d.id}` }, d.event_type),
        String(d.attempt),
        pill(d.status),
        d.response_status ? `HTTP ${d.response_status}` : (d.error || '—'),
      ]), (i) => ({ 'data-test': 'delivery-row', 'data-key': items[i].id })),
    empty: () => emptyState(status.value || type.value || endpoint.value ? 'No deliveries match.' : 'No deliveries yet.',
      h('p', {}, 'Deliveries appear when an event goes to one of your endpoints: publish one, or run ',
        h('code', {}, 'stile trigger verification_session.verified'), '.')),
  });
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    list.reset().catch(() => {});
  });
  await list.refresh();
  return { refresh: list.refresh };
}

/** One delivery attempt. */
export async function renderDetail(root, params) {
  const base = `/v1/webhook_endpoints/${encodeURIComponent(params.id)}`;
  const body = h('div', {});
  fill(root, h('p', {}, h('a', { href: `#/endpoints/${params.id}` }, '← Endpoint')), body);

  let final = false;
  async function refresh() {
    const d = await api('GET', `${base}/deliveries/${encodeURIComponent(params.delivery)}`);
    final = d.status === 'succeeded' || d.status === 'failed';
    const actions = [];
    if (d.status === 'pending' || d.status === 'retrying') {
      actions.push(h('button', {
        type: 'button', 'data-key': 'retry',
        onclick: (e) => busy(e.currentTarget, async () => {
          const moved = await api('POST', `${base}/deliveries/${d.id}/retry`, {});
          toast(`Attempt ${moved.attempt} goes now.`);
          await refresh();
        }),
      }, 'Retry now'));
    }
    actions.push(h('button', {
      type: 'button', class: 'secondary', 'data-key': 'resend',
      onclick: (e) => busy(e.currentTarget, async () => {
        await api('POST', `/v1/events/${d.event_id}/resend`, { endpoint: params.id });
        toast('Event resent: a new delivery is queued.');
      }),
    }, 'Resend event'));
    const request = d.request
      ? [h('h2', {}, 'Request'),
        d.request.transformation_version
          ? h('p', { 'data-test': 'transformed' }, `Made by the endpoint's transformation (version ${d.request.transformation_version}): `,
            h('strong', {}, d.request.method), ' ', h('span', { class: 'url' }, d.request.url))
          : null,
        table('Request headers', ['Header', 'Value'], Object.entries(d.request.headers).map(([k, v]) => [h('code', {}, k), h('code', { class: 'wrap' }, v)])),
        h('h3', {}, 'Body'), jsonBlock(d.request.body)]
      : [h('h2', {}, 'Request'), h('p', { class: 'muted' }, d.status === 'pending' ? 'Not sent yet.' : 'Not recorded.')];
    const response = d.status === 'pending'
      ? h('p', { class: 'muted' }, 'No response yet.')
      : [h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', { 'data-test': 'response-status' }, d.response_status ? `HTTP ${d.response_status}` : 'no HTTP answer'),
        // An error that only restates the status ("HTTP 500") is not shown twice.
        d.error && d.error !== `HTTP ${d.response_status}` ? [h('dt', {}, 'Error'), h('dd', { 'data-test': 'response-error' }, d.error)] : null,
        h('dt', {}, 'Duration'), h('dd', {}, d.duration_ms === null ? '—' : `${d.duration_ms} ms`)),
      h('h3', {}, 'Body'), d.response_body ? jsonBlock(d.response_body) : h('p', { class: 'muted' }, 'Empty.')];
    patch(body,
      h('div', { class: 'view-head' }, h('h1', {}, `${d.event_type} · attempt ${d.attempt}`), pill(d.status)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Delivery'), h('dd', {}, h('code', {}, d.id)),
        h('dt', {}, 'Event'), h('dd', {}, h('a', { href: `#/events/${d.event_id}` }, d.event_id)),
        h('dt', {}, 'Time'), h('dd', {}, timeCell(d.created)),
        h('dt', {}, 'Next retry'), h('dd', {}, d.status === 'retrying' && d.next_retry_at ? timeCell(d.next_retry_at) : '—')),
      h('div', { class: 'actions' }, actions),
      h('section', { class: 'split' },
        h('div', {}, request),
        h('div', {}, h('h2', {}, 'Response'), response)));
  }
  await refresh();
  // A finished attempt never changes: stop redrawing it under the reader.
  return { refresh: () => (final ? Promise.resolve() : refresh()) };
}

// Overview: delivery volume and success over time, what is queued, and recent failures.

import { api, query } from '../api.js';
import { deliveryChart } from '../chart.js';
import { emptyState, fill, h, patch, percent, pill, table, timeCell } from '../ui.js';

const WINDOWS = [
  ['1h', 3600, 'Last hour'],
  ['24h', 86400, 'Last 24 hours'],
  ['7d', 7 * 86400, 'Last 7 days'],
];

/** Renders the overview into `root`. */
export async function render(root, _params, search) {
  const windowName = WINDOWS.some(([n]) => n === search.get('window')) ? search.get('window') : '24h';
  const seconds = WINDOWS.find(([n]) => n === windowName)[1];
  const body = h('div', {});
  const picker = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
    WINDOWS.map(([name, , text]) => h('a', {
      href: `#/overview?window=${name}`, 'aria-current': name === windowName ? 'true' : null,
    }, text)));
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Overview'), picker), body);

  async function refresh() {
    const now = Math.floor(Date.now() / 1000);
    const [stats, endpoints] = await Promise.all([
      api('GET', `/v1/delivery_stats${query({ since: now - seconds })}`),
      api('GET', '/v1/webhook_endpoints?limit=100'),
    ]);
    const names = new Map(endpoints.data.map((e) => [e.id, e.url]));
    const total = stats.totals.succeeded + stats.totals.failed;
    const cards = h('div', { class: 'cards' },
      card('Attempts', total),
      card('Succeeded', stats.totals.succeeded),
      card('Failed', stats.totals.failed),
      card('Success rate', percent(stats.totals.succeeded, total)),
      card('Queued now', stats.pending, 'deliveries waiting for an attempt or a retry'));
    let start = null;
    if (endpoints.data.length === 0) {
      start = emptyState('No endpoints yet.',
        h('p', {}, 'Create an endpoint for your receiver, then publish an event or run ',
          h('code', {}, 'stile trigger verification_session.verified'), ' to see deliveries here.'),
        h('a', { class: 'button', href: '#/endpoints?new=1' }, 'Create an endpoint'));
    }
    const failures = stats.recent_failures.length === 0
      ? h('p', { class: 'muted' }, 'No failed attempts. ')
      : table('Recent failures', ['Time', 'Endpoint', 'Event', 'Status', 'Reason'], stats.recent_failures.map((d) => [
        timeCell(d.created),
        h('a', { href: `#/endpoints/${d.endpoint_id}` }, names.get(d.endpoint_id) || d.endpoint_id),
        d.event_type,
        pill(d.status),
        h('a', { href: `#/endpoints/${d.endpoint_id}/deliveries/${d.id}` }, d.error || `HTTP ${d.response_status}`),
      ]), (i) => ({ 'data-key': stats.recent_failures[i].id }));
    patch(body, start, cards,
      h('section', { 'aria-labelledby': 'chart-title' }, h('h2', { id: 'chart-title' }, 'Delivery attempts'), deliveryChart(stats)),
      h('section', { 'aria-labelledby': 'failures-title' }, h('h2', { id: 'failures-title' }, 'Recent failures'), failures));
  }
  await refresh();
  return { refresh };
}

function card(title, value, hint) {
  return h('div', { class: 'stat', title: hint || null }, h('div', { class: 'stat-value' }, String(value)), h('div', { class: 'stat-label' }, title));
}

// A content filter's field (its JSON, and *Try it* on a type's example or a pasted
// event), shared by the endpoint form and the replay form, in the dashboard and the portal.

import { api } from '../api.js';
import { busy, errorBox, field, fill, h } from '../ui.js';
import { tryOn } from './try_on.js';

/** The field for `initial` (a filter, or null) with `hint` under it; `types`: those with
 * an example to try on. `value()` is the filter, `null` (none) or an Error. */
export function filterField(initial, types, hint) {
  const text = h('textarea', { name: 'filter', rows: '3', spellcheck: 'false', placeholder: '{"data": {"amount": {"$gte": 1000}}}' });
  text.value = initial ? JSON.stringify(initial, null, 2) : '';
  const { on, pasted, event } = tryOn(types, 'filter', 'Try the filter on', '{"type": "invoice.paid", "data": {"amount": 1500}}');
  const result = h('div', { 'aria-live': 'polite', 'data-test': 'filter-result' });
  const tryIt = h('button', { type: 'button', class: 'secondary small' }, 'Try it');
  const value = () => {
    if (!text.value.trim()) return null;
    try {
      return JSON.parse(text.value);
    } catch (err) {
      return new Error(`The filter is not JSON: ${err.message}`);
    }
  };
  tryIt.addEventListener('click', () => busy(tryIt, async () => {
    const filter = value();
    if (filter instanceof Error) return fill(result, errorBox(filter));
    const source = event();
    if (source instanceof Error) return fill(result, errorBox(source));
    const body = { filter: filter || {}, ...source };
    try {
      const tried = await api('POST', '/v1/filters/test', body);
      fill(result, h('p', { class: tried.matches ? 'notice ok' : 'notice' }, tried.matches
        ? 'It matches: the filter takes this event.'
        : 'It does not match: the filter leaves this event out.'));
    } catch (err) {
      fill(result, errorBox(err));
    }
  }));
  const element = h('div', {},
    field('Filter', text, hint),
    h('div', { class: 'actions' }, h('span', {}, 'Try it on'), on, tryIt), pasted, result);
  return { element, value };
}

// What a *Try it* runs on, shared by the filter and transformation fields of the
// endpoint form: a type's catalogue example, or an event pasted below.

import { h } from '../ui.js';

/** The select (`name`: its form name) of `types`' examples or a pasted event, the textarea
 * for the pasted one, and `event()`: the request's part (`{event_type}` or `{event}`), or
 * an Error if the pasted text is not JSON. */
export function tryOn(types, name, label, placeholder) {
  const on = h('select', { name: `${name}_try_on`, 'aria-label': label },
    types.map((t) => h('option', { value: t.name }, `${t.name} example`)),
    h('option', { value: '' }, 'an event pasted below'));
  const pasted = h('textarea', { name: `${name}_event`, rows: '3', spellcheck: 'false', hidden: types.length > 0, placeholder });
  on.addEventListener('change', () => { pasted.hidden = on.value !== ''; });
  const event = () => {
    if (on.value) return { event_type: on.value };
    try {
      return { event: JSON.parse(pasted.value || 'null') };
    } catch (err) {
      return new Error(`The event is not JSON: ${err.message}`);
    }
  };
  return { on, pasted, event };
}

// Settings: the operational endpoints (the platform's own receivers of what happens to
// its customers' endpoints) and what stile told them lately. An unrestricted key only.

import { api, chooseApp, query } from '../api.js';
import { busy, confirmDialog, copyButton, emptyState, errorBox, field, fill, h, onSubmit, patch, pill, table, timeCell, toast } from '../ui.js';

/** The settings page. */
export async function render(root) {
  const formSlot = h('div', {});
  const endpointsSlot = h('div', {});
  const toldSlot = h('div', {});
  const newButton = h('button', { type: 'button', 'aria-expanded': 'false' }, 'New operational endpoint');
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Settings')),
    h('section', { 'aria-labelledby': 'ops-title' },
      h('div', { class: 'view-head' }, h('h2', { id: 'ops-title' }, 'Operational webhooks'), newButton),
      h('p', {}, 'Your own endpoints, told when your customers\' endpoints are created, changed, disabled or enabled, ',
        'when their deliveries start failing or recover, and when a delivery fails for good. ',
        'Signed and retried like any delivery.'),
      formSlot, endpointsSlot),
    h('section', { 'aria-labelledby': 'told-title' },
      h('h2', { id: 'told-title' }, 'Lately told'), toldSlot));

  let types;
  try {
    types = (await api('GET', '/v1/operational_event_types')).data;
  } catch (err) {
    if (err.status !== 403) throw err;
    newButton.hidden = true;
    fill(endpointsSlot, h('p', { class: 'notice', 'data-test': 'ops-restricted' },
      'Operational webhooks are the platform\'s: sign in with an API key that is not restricted to one application to manage them.'));
    return null;
  }

  newButton.addEventListener('click', () => {
    newButton.setAttribute('aria-expanded', 'true');
    fill(formSlot, createForm(types, async (created) => {
      newButton.setAttribute('aria-expanded', 'false');
      fill(formSlot, secretOnce(created));
      await refresh();
    }, () => {
      newButton.setAttribute('aria-expanded', 'false');
      fill(formSlot);
    }));
    formSlot.querySelector('input').focus();
  });

  async function refresh() {
    const [endpoints, told] = await Promise.all([
      api('GET', '/v1/operational_webhook_endpoints?limit=100'),
      api('GET', `/v1/operational_events${query({ limit: 10 })}`),
    ]);
    // Patched, not replaced: a button under the pointer survives the live refresh.
    patch(endpointsSlot, endpoints.data.length === 0
      ? emptyState('No operational endpoints yet.', h('p', {}, 'Create one to hear when a customer\'s endpoint is disabled.'))
      : table('Operational endpoints', ['Endpoint', 'Status', 'Events', 'Created', ''], endpoints.data.map((e) => [
        h('div', {}, e.name ? h('div', { class: 'name' }, e.name) : null, h('span', { class: 'url' }, e.url)),
        pill(e.status),
        e.enabled_events.includes('*') ? 'all' : h('ul', { class: 'type-list' }, e.enabled_events.map((t) => h('li', {}, t))),
        timeCell(e.created),
        h('div', { class: 'actions' }, toggleButton(e), deleteButton(e)),
      ]), (i) => ({ 'data-key': endpoints.data[i].id, 'data-test': 'ops-endpoint' })));
    patch(toldSlot, told.data.length === 0
      ? emptyState('Nothing told yet.')
      : table('Operational events', ['Event', 'About', 'Why', 'Sent'], told.data.map((e) => [
        h('code', {}, e.type),
        aboutLink(e.data),
        e.data.reason,
        h('span', {}, timeCell(e.created), e.pending_webhooks ? h('span', { class: 'muted' }, ' · still being delivered') : null),
      ]), (i) => ({ 'data-key': told.data[i].id, 'data-test': 'ops-told' })));
  }

  // Handlers given to `h` (not added later), so a row kept by the live refresh takes the
  // new row's, which knows the endpoint as it is now.
  function toggleButton(endpoint) {
    const enabled = endpoint.status === 'enabled';
    return h('button', {
      type: 'button', class: 'secondary small',
      onclick: (e) => busy(e.currentTarget, async () => {
        await api('POST', `/v1/operational_webhook_endpoints/${endpoint.id}`, { status: enabled ? 'disabled' : 'enabled' });
        toast(`Operational endpoint ${enabled ? 'disabled' : 'enabled'}.`);
        await refresh();
      }),
    }, enabled ? 'Disable' : 'Enable');
  }

  function deleteButton(endpoint) {
    return h('button', {
      type: 'button', class: 'danger small',
      onclick: async (e) => {
        const button = e.currentTarget;
        if (!(await confirmDialog(`Delete the operational endpoint ${endpoint.url}? It hears nothing more.`, 'Delete'))) return;
        await busy(button, async () => {
          await api('DELETE', `/v1/operational_webhook_endpoints/${endpoint.id}`);
          toast('Operational endpoint deleted.');
          await refresh();
        });
      },
    }, 'Delete');
  }

  await refresh();
  return { refresh };
}

/** A link to the endpoint an operational event is about, in its application (the
 * dashboard switches to it: the endpoint is found only there). */
function aboutLink(data) {
  const app = data.application;
  const link = h('a', {
    href: `#/endpoints/${data.endpoint.id}`, class: 'url',
    onclick: () => {
      chooseApp(app.id);
      window.dispatchEvent(new Event('stile:apps-changed'));
    },
  }, data.endpoint.name || data.endpoint.url);
  return h('div', {}, link, app.uid ? h('div', { class: 'muted' }, app.uid) : null);
}

/** The form that creates an operational endpoint: its URL, a name, and what it hears. */
function createForm(types, created, cancel) {
  const url = h('input', { type: 'url', name: 'url', required: true, placeholder: 'https://ops.example.com/stile' });
  const name = h('input', { type: 'text', name: 'name', maxlength: '120' });
  const all = h('input', { type: 'checkbox', name: 'all', checked: true });
  const boxes = types.map((t) => h('input', { type: 'checkbox', name: 'type', value: t.name, disabled: true }));
  all.addEventListener('change', () => boxes.forEach((b) => { b.disabled = all.checked; }));
  const error = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Create');
  const form = h('form', { class: 'card form', 'aria-label': 'New operational endpoint' },
    h('h2', {}, 'New operational endpoint'),
    field('URL', url), field('Name', name, 'Optional: how this list shows it.'),
    h('fieldset', {}, h('legend', {}, 'Events'),
      h('label', { class: 'check' }, all, ' All operational events'),
      types.map((t, i) => h('label', { class: 'check check-type', 'data-test': 'ops-type' }, boxes[i],
        h('span', { class: 'check-text' }, h('span', {}, t.name), h('small', { class: 'muted' }, t.description))))),
    error,
    h('div', { class: 'actions' }, submit, h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')));
  onSubmit(form, submit, error, () => {
    const events = all.checked ? ['*'] : boxes.filter((b) => b.checked).map((b) => b.value);
    if (events.length === 0) return new Error('Choose at least one event, or all of them.');
    const body = { url: url.value.trim(), enabled_events: events };
    if (name.value.trim()) body.name = name.value.trim();
    return body;
  }, async (body) => created(await api('POST', '/v1/operational_webhook_endpoints', body)));
  return form;
}

/** The new endpoint's secret, shown this once. */
function secretOnce(endpoint) {
  return h('div', { class: 'card secret-once', role: 'region', 'aria-label': 'New signing secret' },
    h('h2', {}, 'Operational endpoint created'),
    h('p', {}, 'This is its signing secret. It is shown only now: copy it into your receiver\'s configuration.'),
    h('div', { class: 'secret-row' }, h('code', { class: 'secret', 'data-test': 'secret' }, endpoint.secret), copyButton(endpoint.secret)));
}

/** What stile told the operational endpoints about one webhook endpoint, newest first
 * (for the endpoint's page): an element, `null` when nothing was told, or `false` when
 * the key may not see operational events (an app-restricted key, a portal token). */
export async function toldAbout(endpointId) {
  let told;
  try {
    told = (await api('GET', `/v1/operational_events${query({ endpoint_id: endpointId, limit: 5 })}`)).data;
  } catch (err) {
    if (err.status === 403) return false;
    return errorBox(err);
  }
  if (told.length === 0) return null;
  return h('div', { class: 'card', role: 'region', 'aria-label': 'Operational events', 'data-test': 'ops-about' },
    h('h2', {}, 'Told your operational endpoints'),
    h('ul', { class: 'told' }, told.map((e) => h('li', { 'data-test': 'ops-about-event' },
      h('code', {}, e.type), ' ', timeCell(e.created), ': ', e.data.reason,
      e.pending_webhooks ? h('span', { class: 'muted' }, ' (still being delivered)') : null))),
    h('p', {}, h('a', { href: '#/settings' }, 'Operational webhooks')));
}

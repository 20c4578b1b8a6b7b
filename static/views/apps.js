// Applications: the list (searchable by name and uid), create, and one application's
// page: edit, switch the dashboard to it, delete.

import { api, chooseApp, currentApp, query } from '../api.js';
import {
  busy, confirmDialog, emptyState, field, fill, h, metadataText, onSubmit, parseMetadata, pill, table, timeCell, toast,
} from '../ui.js';

/** The most rows the list draws at once; a search narrows the rest down. */
const MAX_ROWS = 100;

/** Every application of the key's mode, newest first (all pages). */
export async function allApps() {
  const apps = [];
  let after;
  for (;;) {
    const page = await api('GET', `/v1/apps${query({ limit: 100, starting_after: after })}`);
    apps.push(...page.data);
    if (!page.has_more || page.data.length === 0) return apps;
    after = page.data[page.data.length - 1].id;
  }
}

/** Whether `app` matches a search text (name, uid or id, case-insensitive). */
export function matches(app, text) {
  const needle = text.trim().toLowerCase();
  if (!needle) return true;
  return [app.name, app.uid || '', app.id].some((v) => v.toLowerCase().includes(needle));
}

/** Tells the shell the applications changed, so its switcher lists them afresh. */
function changed() {
  window.dispatchEvent(new Event('stile:apps-changed'));
}

/** Makes `id` the application the dashboard shows (null: the default one). */
function switchTo(app) {
  chooseApp(app.default ? null : app.id);
  changed();
  toast(`Showing ${app.name}.`);
  location.hash = '#/overview';
}

/** The application list. */
export async function renderList(root) {
  const formSlot = h('div', {});
  const listSlot = h('div', {});
  const search = h('input', {
    type: 'search', name: 'app_search', placeholder: 'Search by name, uid or id', autocomplete: 'off', 'aria-label': 'Search applications',
  });
  const newButton = h('button', { type: 'button', 'aria-expanded': 'false' }, 'New application');
  newButton.addEventListener('click', () => openCreate());
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Applications'), newButton),
    h('p', { class: 'muted' }, 'Each application is one of your customers: its own endpoints, events and deliveries. API requests name one with the Stile-App header.'),
    formSlot, field('Search', search), listSlot);

  let apps = [];
  function draw() {
    const shown = apps.filter((a) => matches(a, search.value));
    if (shown.length === 0) {
      fill(listSlot, emptyState(search.value ? 'No application matches.' : 'No applications yet.'));
      return;
    }
    const chosen = currentApp();
    const rows = shown.slice(0, MAX_ROWS).map((a) => {
      const open = h('button', { type: 'button', class: 'secondary small' }, 'Show its data');
      open.addEventListener('click', () => switchTo(a));
      const current = a.id === chosen || (a.default && !chosen);
      return [
        h('a', { href: `#/apps/${a.id}` }, a.name),
        a.uid ? h('code', {}, a.uid) : '',
        h('span', {}, a.default ? pill('default') : null, current ? pill('shown') : null),
        timeCell(a.created),
        current ? '' : open,
      ];
    });
    fill(listSlot, table('Applications', ['Name', 'uid', '', 'Created', ''], rows, (i) => ({ 'data-key': shown[i].id })),
      shown.length > MAX_ROWS ? h('p', { class: 'muted' }, `${shown.length - MAX_ROWS} more: narrow the search.`) : null);
  }
  search.addEventListener('input', draw);

  async function refresh() {
    apps = await allApps();
    apps.sort((a, b) => (b.default - a.default) || a.name.localeCompare(b.name));
    draw();
  }

  function openCreate() {
    newButton.setAttribute('aria-expanded', 'true');
    const form = appForm({
      title: 'New application',
      submitLabel: 'Create application',
      async submit(body) {
        const created = await api('POST', '/v1/apps', body);
        fill(formSlot);
        newButton.setAttribute('aria-expanded', 'false');
        toast(`Application ${created.name} created.`);
        changed();
        await refresh();
      },
      cancel() {
        fill(formSlot);
        newButton.setAttribute('aria-expanded', 'false');
      },
    });
    fill(formSlot, form);
    form.querySelector('input').focus();
  }

  await refresh();
  // Not refreshed live: applications change by hand (here, or through the API), and
  // reading every page of them every two seconds would cost more than it shows.
  return null;
}

/** The create/edit form. `initial` is an application when editing. */
function appForm({ title, submitLabel, submit, cancel, initial }) {
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '120', value: initial ? initial.name : '' });
  const uid = h('input', {
    type: 'text', name: 'uid', maxlength: '64', pattern: '[A-Za-z0-9_.\\-]+', value: initial && initial.uid ? initial.uid : '', spellcheck: 'false',
  });
  const metadata = h('textarea', { name: 'metadata', rows: '3', placeholder: 'plan=pro' });
  metadata.value = initial ? metadataText(initial.metadata) : '';
  const error = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'submit' }, submitLabel);
  const form = h('form', { class: 'card form', 'aria-label': title },
    h('h2', {}, title),
    field('Name', name),
    field('uid', uid, 'Optional: your own id for it (letters, digits, _ . -), usable wherever its id is.'),
    field('Metadata', metadata, 'One key=value per line.'),
    error,
    h('div', { class: 'actions' }, button, h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')));
  onSubmit(form, button, error, () => {
    const meta = parseMetadata(metadata.value);
    if (meta instanceof Error) return meta;
    const body = { name: name.value.trim(), uid: uid.value.trim() || null, metadata: meta };
    if (!initial && body.uid === null) delete body.uid;
    return body;
  }, submit);
  return form;
}

/** One application: its facts, edit, show its data, delete. */
export async function renderDetail(root, params) {
  const head = h('div', {});
  const panel = h('div', {});
  fill(root, h('p', {}, h('a', { href: '#/apps' }, '← Applications')), head, panel);
  let app = await api('GET', `/v1/apps/${encodeURIComponent(params.id)}`);

  function draw() {
    const show = h('button', { type: 'button' }, 'Show its data');
    show.addEventListener('click', () => switchTo(app));
    const edit = h('button', { type: 'button', class: 'secondary' }, 'Edit');
    edit.addEventListener('click', () => {
      const form = appForm({
        title: 'Edit application', submitLabel: 'Save', initial: app,
        async submit(body) {
          app = await api('POST', `/v1/apps/${app.id}`, body);
          fill(panel);
          toast('Application saved.');
          changed();
          draw();
        },
        cancel: () => fill(panel),
      });
      fill(panel, form);
      form.querySelector('input').focus();
    });
    const del = h('button', { type: 'button', class: 'danger' }, 'Delete');
    del.addEventListener('click', async () => {
      const question = `Delete ${app.name} and everything it owns (endpoints, events, deliveries, its API keys)? Its pending deliveries end now. This cannot be undone.`;
      if (!(await confirmDialog(question, 'Delete application'))) return;
      await busy(del, async () => {
        await api('DELETE', `/v1/apps/${app.id}`);
        if (currentApp() === app.id) chooseApp(null);
        changed();
        toast(`Application ${app.name} deleted.`);
        location.hash = '#/apps';
      });
    });
    fill(head,
      h('div', { class: 'view-head' }, h('h1', {}, app.name), app.default ? pill('default') : null),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Id'), h('dd', {}, h('code', {}, app.id)),
        h('dt', {}, 'uid'), h('dd', {}, app.uid ? h('code', {}, app.uid) : '—'),
        h('dt', {}, 'Created'), h('dd', {}, timeCell(app.created)),
        h('dt', {}, 'Metadata'), h('dd', {}, metadataText(app.metadata) || '—')),
      h('div', { class: 'actions' }, show, edit, app.default ? null : del),
      app.default ? h('p', { class: 'muted' }, 'The default application is the one requests without a Stile-App header act on; it cannot be deleted.') : null);
  }
  draw();
  return null;
}

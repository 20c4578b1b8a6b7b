// Endpoints: the list with status and success rate, create (secret shown once), and one
// endpoint's page: edit, enable/disable, rotate secret, send test, recover what failed,
// delete, deliveries.

import { api, query } from '../api.js';
import { pagedList } from '../list.js';
import {
  busy, confirmDialog, copyButton, emptyState, errorBox, field, fill, h, jsonBlock, metadataText, onSubmit, pairsText, parseMetadata,
  parsePairs, percent, pill,
  table, timeCell, toast,
} from '../ui.js';
import { deliveriesPanel } from './deliveries.js';
import { filterField } from './filter_field.js';
import { toldAbout } from './settings.js';
import { transformationFacts, transformationField } from './transformation.js';

const DAY = 86400;

/** The endpoint list. */
export async function renderList(root, _params, search) {
  const formSlot = h('div', {});
  const listSlot = h('div', {});
  const newButton = h('button', { type: 'button', 'aria-expanded': 'false' }, 'New endpoint');
  newButton.addEventListener('click', () => openCreate());
  const label = search.get('label');
  const labelNote = label
    ? h('p', { 'data-test': 'label-filter' }, 'Labelled ', labelChip(label), ' · ', h('a', { href: '#/endpoints' }, 'show all'))
    : null;
  fill(root, h('div', { class: 'view-head' }, h('h1', {}, 'Endpoints'), newButton), labelNote, formSlot, listSlot);

  let stats = null;
  const list = pagedList(listSlot, {
    async load(after) {
      const [page, s] = await Promise.all([
        api('GET', `/v1/webhook_endpoints${query({ limit: 20, starting_after: after, label })}`),
        api('GET', `/v1/delivery_stats${query({ since: Math.floor(Date.now() / 1000) - DAY })}`),
      ]);
      stats = new Map(s.endpoints.map((e) => [e.endpoint_id, e]));
      return page;
    },
    render: (items) => table('Endpoints', ['Endpoint', 'Status', 'Events', 'Success (24 h)', 'Queued', 'Created'], items.map((e) => {
      const s = stats.get(e.id) || { succeeded: 0, failed: 0, filtered: 0, pending: 0 };
      return [
        h('div', {},
          e.name ? h('div', { class: 'name' }, e.name) : null,
          h('a', { href: `#/endpoints/${e.id}`, class: 'url' }, e.url),
          e.labels.length ? h('div', { class: 'labels' }, e.labels.map(labelChip)) : null),
        h('span', { title: e.disabled_reason || '' }, pill(e.status), e.status === 'enabled' && e.health === 'degraded' ? pill('degraded') : null,
          e.kind === 'listener' ? pill('listener') : null),
        e.enabled_events.includes('*') ? 'all events'
          : h('ul', { class: 'type-list' }, e.enabled_events.map((t) => h('li', {}, t))),
        h('span', { title: `${s.succeeded} succeeded, ${s.failed} failed${s.filtered ? `, ${s.filtered} left out by its filter` : ''}` },
          percent(s.succeeded, s.succeeded + s.failed)),
        String(s.pending),
        timeCell(e.created),
      ];
    }), (i) => ({ 'data-key': items[i].id })),
    empty: () => label ? emptyState(`No endpoint is labelled ${label}.`) : emptyState('No endpoints yet.',
      h('p', {}, 'An endpoint is a URL of yours that stile sends signed events to. Create one, then send it a test or run ',
        h('code', {}, 'stile trigger verification_session.verified'), '.')),
  });

  async function openCreate() {
    newButton.setAttribute('aria-expanded', 'true');
    const form = await endpointForm({
      title: 'New endpoint',
      submitLabel: 'Create endpoint',
      async submit(body) {
        const created = await api('POST', '/v1/webhook_endpoints', body);
        fill(formSlot, secretOnce(created, 'Endpoint created'));
        newButton.setAttribute('aria-expanded', 'false');
        await list.reset();
      },
      cancel() {
        fill(formSlot);
        newButton.setAttribute('aria-expanded', 'false');
      },
    });
    fill(formSlot, form);
    form.querySelector('input').focus();
  }

  await list.refresh();
  if (search.get('new')) await openCreate();
  return { refresh: list.refresh };
}

/** A label, linking to the endpoints that carry it. */
function labelChip(label) {
  return h('a', { class: 'label-chip', href: `#/endpoints${query({ label })}`, 'data-test': 'label' }, label);
}

/** A number field's whole number, or null when empty (the server checks the range). */
function wholeOrNull(text) {
  const trimmed = text.trim();
  return trimmed === '' ? null : Number(trimmed);
}

/** An endpoint's flow limits in words. */
function flowText(endpoint) {
  const rate = endpoint.rate_limit ? `${endpoint.rate_limit} a second` : 'no rate limit';
  const inFlight = endpoint.max_in_flight ? `${endpoint.max_in_flight} at once` : 'the server\'s default at once';
  return `${rate}, ${inFlight}`;
}

/** What holds an endpoint's deliveries back now (`GET .../flow`), in words; null when nothing does. */
function flowNow(flow) {
  const count = (n) => `${n} ${n === 1 ? 'delivery waits' : 'deliveries wait'}`;
  const rising = flow.recovering_rate ? ` It recovers at ${flow.recovering_rate} a second now, doubling every second.` : '';
  if (flow.reason === 'paused' || (flow.paused_until && !flow.throttled)) {
    return ['Paused, ending ', timeCell(flow.paused_until), ': the receiver asked stile to slow down (429, or 503 with Retry-After). ',
      flow.waiting ? `${count(flow.waiting)}; ` : '', 'held deliveries are not failed attempts.'];
  }
  if (flow.reason === 'rate_limit') {
    return flow.recovering_rate
      ? `Throttled: ${count(flow.waiting)} for the reduced rate after a pause.${rising}`
      : `Throttled: ${count(flow.waiting)} for the rate limit (${flow.rate_limit} a second).`;
  }
  if (flow.reason === 'max_in_flight') {
    return `Throttled: ${count(flow.waiting)} while ${flow.in_flight} requests are open, its most at once.${rising}`;
  }
  if (flow.recovering_rate) return `Recovering after a pause.${rising}`;
  return null;
}

/** How stile authenticates to the endpoint, in words (never a secret: answers hold none). */
function authText(auth) {
  if (!auth) return '—';
  if (auth.type === 'basic') return `HTTP Basic, as ${auth.username}`;
  if (auth.type === 'oauth2_client_credentials') return `OAuth2 client credentials: ${auth.client_id} at ${auth.token_url}`;
  return 'Bearer token';
}

/**
 * The form's authentication part: a type, and the fields of that type. `value()` is what
 * the request carries: undefined to keep what the endpoint has (an edit that leaves it),
 * null to remove it, or the new one whole (its secrets are write-only, so never prefilled).
 */
function authFields(initial) {
  const editing = Boolean(initial);
  const kind = h('select', { name: 'auth_type' },
    editing && initial.authentication ? h('option', { value: 'keep' }, `Keep: ${authText(initial.authentication)}`) : null,
    h('option', { value: 'none' }, 'None'),
    h('option', { value: 'basic' }, 'HTTP Basic (username and password)'),
    h('option', { value: 'bearer' }, 'Bearer token'),
    h('option', { value: 'oauth2_client_credentials' }, 'OAuth2 client credentials'));
  const username = h('input', { type: 'text', name: 'auth_username', autocomplete: 'off' });
  const password = h('input', { type: 'password', name: 'auth_password', autocomplete: 'new-password' });
  const token = h('input', { type: 'password', name: 'auth_token', autocomplete: 'off' });
  const tokenUrl = h('input', { type: 'url', name: 'auth_token_url', placeholder: 'https://auth.example.com/oauth/token' });
  const clientId = h('input', { type: 'text', name: 'auth_client_id', autocomplete: 'off' });
  const clientSecret = h('input', { type: 'password', name: 'auth_client_secret', autocomplete: 'off' });
  const scope = h('input', { type: 'text', name: 'auth_scope' });
  const audience = h('input', { type: 'text', name: 'auth_audience' });
  const basic = h('div', {}, field('Username', username), field('Password', password, 'Write-only: stored encrypted, never shown again.'));
  const bearer = h('div', {}, field('Token', token, 'Sent as Authorization: Bearer …. Write-only: stored encrypted, never shown again.'));
  const oauth2 = h('div', {},
    field('Token URL', tokenUrl, 'stile asks it for a token (client credentials grant) and sends it as a bearer token until shortly before it expires.'),
    field('Client ID', clientId), field('Client secret', clientSecret, 'Write-only: stored encrypted, never shown again.'),
    field('Scope', scope, 'Optional.'), field('Audience', audience, 'Optional.'));
  const sync = () => {
    basic.hidden = kind.value !== 'basic';
    bearer.hidden = kind.value !== 'bearer';
    oauth2.hidden = kind.value !== 'oauth2_client_credentials';
  };
  kind.addEventListener('change', sync);
  sync();
  const certificate = h('textarea', { name: 'client_certificate', rows: '3', placeholder: '-----BEGIN CERTIFICATE-----' });
  const key = h('textarea', { name: 'client_key', rows: '3', placeholder: '-----BEGIN PRIVATE KEY-----' });
  const removeCertificate = h('input', { type: 'checkbox', name: 'remove_client_certificate' });
  const hasCertificate = editing && initial.client_certificate;
  return {
    element: h('fieldset', {}, h('legend', {}, 'Authentication to the receiver'), field('Type', kind), basic, bearer, oauth2,
      field('Client certificate', certificate, hasCertificate
        ? `For receivers that require mutual TLS. Now: SHA-256 ${initial.client_certificate.fingerprint_sha256.slice(0, 16)}…; leave empty to keep it.`
        : 'Optional, for receivers that require mutual TLS: the PEM chain, the client\'s own certificate first.'),
      field('Client certificate key', key, 'The PEM private key of that certificate. Write-only: stored encrypted, never shown again.'),
      hasCertificate ? h('label', { class: 'check' }, removeCertificate, ' Remove the client certificate') : null),
    certificate() {
      if (certificate.value.trim()) return { certificate: certificate.value, key: key.value };
      return hasCertificate && removeCertificate.checked ? null : undefined;
    },
    value() {
      switch (kind.value) {
        case 'keep': return undefined;
        case 'none': return editing && initial.authentication ? null : undefined;
        case 'basic': return { type: 'basic', username: username.value, password: password.value };
        case 'oauth2_client_credentials': return {
          type: 'oauth2_client_credentials', token_url: tokenUrl.value.trim(), client_id: clientId.value, client_secret: clientSecret.value,
          scope: scope.value.trim() || null, audience: audience.value.trim() || null,
        };
        default: return { type: 'bearer', token: token.value };
      }
    },
  };
}

/** Splits the labels field: labels are separated by commas or spaces. */
function parseLabels(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** The "copy it now" panel for a secret shown once. */
function secretOnce(endpoint, title) {
  return h('div', { class: 'card secret-once', role: 'region', 'aria-label': 'New signing secret' },
    h('h2', {}, title),
    h('p', {}, 'This is the signing secret. It is shown only now: copy it into your receiver\'s configuration.'),
    h('div', { class: 'secret-row' }, h('code', { class: 'secret', 'data-test': 'secret' }, endpoint.secret), copyButton(endpoint.secret)),
    h('p', {}, h('a', { href: `#/endpoints/${endpoint.id}` }, `Open ${endpoint.url}`)));
}

/** One event type to tick in the form: its name, and what it means under it; for a
 * built-in type, the name the Kayle endpoints API gives it, and whether this endpoint
 * receives it under that name (`box.value` is the name it is subscribed by). */
export function typeCheck(type, box, alias) {
  const asAlias = alias && box.value === alias;
  const kayle = alias ? h('small', { class: 'muted', 'data-test': 'kayle-name' },
    asAlias ? `Received under Kayle's name, ${alias}.` : `Kayle's name: ${alias}.`) : null;
  return h('label', { class: 'check check-type', 'data-test': 'type-choice', 'data-type': type.name }, box,
    h('span', { class: 'check-text' }, h('span', {}, type.name, type.archived ? h('span', { class: 'muted' }, ' (archived)') : null),
      type.description ? h('small', { class: 'muted' }, type.description) : null, kayle));
}

/** The create/edit form. `initial` is an endpoint when editing. */
async function endpointForm({ title, submitLabel, submit, cancel, initial }) {
  const chosen = new Set(initial ? initial.enabled_events : ['*']);
  // Archived types are offered only to the endpoints that already have them.
  const catalogue = (await api('GET', '/v1/event_types?include_archived=true')).data;
  // Kayle's names are other names of built-in types, not types: each is shown with the
  // type it names, and an endpoint subscribed by it keeps receiving it under it.
  const aliasOf = new Map(catalogue.filter((t) => t.alias_of).map((t) => [t.alias_of, t.name]));
  const types = catalogue.filter((t) => !t.alias_of && (!t.archived || chosen.has(t.name)));
  const url = h('input', { type: 'url', name: 'url', required: true, placeholder: 'http://localhost:3000/webhooks', value: initial ? initial.url : '' });
  const all = h('input', { type: 'checkbox', name: 'all_events', checked: chosen.has('*') });
  const boxes = types.map((t) => {
    const alias = aliasOf.get(t.name);
    const value = alias && chosen.has(alias) ? alias : t.name;
    return h('input', { type: 'checkbox', name: 'event', value, checked: chosen.has(t.name) || chosen.has(value) });
  });
  const syncBoxes = () => boxes.forEach((b) => { b.disabled = all.checked; });
  all.addEventListener('change', syncBoxes);
  syncBoxes();
  const name = h('input', { type: 'text', name: 'name', maxlength: '120', value: initial && initial.name ? initial.name : '' });
  const labels = h('input', { type: 'text', name: 'labels', placeholder: 'billing team:payments', value: initial ? initial.labels.join(' ') : '' });
  const description = h('input', { type: 'text', name: 'description', value: initial && initial.description ? initial.description : '' });
  const rate = h('input', { type: 'number', name: 'rate_limit', min: '1', max: '100000', step: '1', placeholder: 'no limit', value: initial && initial.rate_limit ? String(initial.rate_limit) : '' });
  const inFlight = h('input', { type: 'number', name: 'max_in_flight', min: '1', max: '1024', step: '1', placeholder: 'server default', value: initial && initial.max_in_flight ? String(initial.max_in_flight) : '' });
  const metadata = h('textarea', { name: 'metadata', rows: '3', placeholder: 'team=identity' });
  metadata.value = initial ? metadataText(initial.metadata) : '';
  const auth = authFields(initial);
  const filter = filterField(initial && initial.filter, types.filter((t) => t.example && !t.archived),
    'Optional: receive only the events whose content this JSON filter takes (Convoy\'s and Outpost\'s syntax: $eq, $gt, $in, $regex, $or, ...).');
  const headers = h('textarea', { name: 'headers', rows: '2', placeholder: 'X-Team: payments' });
  headers.value = initial ? pairsText(initial.headers, ': ') : '';
  const transformation = transformationField(initial, types.filter((t) => t.example && !t.archived), () => {
    const own = parsePairs(headers.value, ':', 'Header');
    return { url: url.value.trim(), headers: own instanceof Error ? undefined : own };
  });
  const error = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'submit' }, submitLabel);
  const form = h('form', { class: 'card form', 'aria-label': title },
    h('h2', {}, title),
    field('URL', url, 'Where stile POSTs events. http:// is fine for localhost in development mode.'),
    h('fieldset', {}, h('legend', {}, 'Events'),
      h('label', { class: 'check' }, all, ' All events (including types added later)'),
      h('div', { class: 'checks' }, types.map((t, i) => typeCheck(t, boxes[i], aliasOf.get(t.name))))),
    field('Name', name, 'Optional: how people recognise it, up to 120 characters.'),
    field('Labels', labels, 'Up to 8, separated by spaces or commas; letters, digits and . _ : / - each.'),
    field('Description', description),
    field('Metadata', metadata, 'One key=value per line.'),
    field('Rate limit', rate, 'Optional: the most requests a second it receives.'),
    field('Max in flight', inFlight, 'Optional: the most requests open at once (empty: the server\'s default).'),
    field('Headers', headers, 'Optional: sent with every delivery, one Name: value per line (at most 20; not the ones stile sets).'),
    filter.element,
    transformation.element,
    auth.element,
    error,
    h('div', { class: 'actions' }, button, h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')));
  onSubmit(form, button, error, () => {
    const meta = parseMetadata(metadata.value);
    if (meta instanceof Error) return meta;
    const sent = parsePairs(headers.value, ':', 'Header');
    if (sent instanceof Error) return sent;
    const events = all.checked ? ['*'] : boxes.filter((b) => b.checked).map((b) => b.value);
    const body = {
      url: url.value.trim(), enabled_events: events, name: name.value.trim() || null, labels: parseLabels(labels.value),
      description: description.value.trim() || null, metadata: meta,
      rate_limit: wholeOrNull(rate.value), max_in_flight: wholeOrNull(inFlight.value), headers: sent,
    };
    const contentFilter = filter.value();
    if (contentFilter instanceof Error) return contentFilter;
    if (contentFilter !== null || initial) body.filter = contentFilter;
    const code = transformation.value();
    if (code !== undefined) body.transformation = code;
    const authentication = auth.value();
    if (authentication !== undefined) body.authentication = authentication;
    const clientCertificate = auth.certificate();
    if (clientCertificate !== undefined) body.client_certificate = clientCertificate;
    if (!initial && !body.description) delete body.description;
    if (!initial && !body.name) delete body.name;
    return body;
  }, submit);
  return form;
}

/** One endpoint: its settings and actions, and its deliveries. */
export async function renderDetail(root, params) {
  const head = h('div', {});
  const panel = h('div', {});
  const deliveriesSlot = h('section', { 'aria-labelledby': 'deliveries-title' });
  const flowSlot = h('div', { 'aria-live': 'polite' });
  const toldSlot = h('div', {});
  fill(root, h('p', {}, h('a', { href: '#/endpoints' }, '← Endpoints')), head, flowSlot, panel, toldSlot, deliveriesSlot);
  let endpoint = await api('GET', `/v1/webhook_endpoints/${encodeURIComponent(params.id)}`);
  const deliveries = await deliveriesPanel(deliveriesSlot, params.id);

  /** Shows what holds its deliveries back now, if anything (refreshed with the view). */
  async function drawFlow() {
    const now = flowNow(await api('GET', `/v1/webhook_endpoints/${endpoint.id}/flow`));
    fill(flowSlot, now ? h('p', { class: 'notice', role: 'status', 'data-test': 'flow-now' }, now) : null);
  }

  /** Whether this key may see operational events (not an app-restricted key or a portal
   * token): asked until the first answer says no. */
  let toldVisible = true;

  /** Shows what stile told the operational endpoints about this one, if anything. */
  async function drawTold() {
    if (!toldVisible) return;
    const told = await toldAbout(endpoint.id);
    toldVisible = told !== false;
    fill(toldSlot, told || null);
  }

  function drawHead() {
    const toggle = h('button', { type: 'button', class: 'secondary' }, endpoint.status === 'enabled' ? 'Disable' : 'Enable');
    toggle.addEventListener('click', () => busy(toggle, async () => {
      endpoint = await api('POST', `/v1/webhook_endpoints/${endpoint.id}`, { status: endpoint.status === 'enabled' ? 'disabled' : 'enabled' });
      toast(`Endpoint ${endpoint.status}.`);
      drawHead();
    }));
    const test = h('button', { type: 'button' }, 'Send test');
    test.addEventListener('click', () => busy(test, async () => {
      const result = await api('POST', `/v1/webhook_endpoints/${endpoint.id}/test`, {});
      fill(panel, h('div', { class: `card result result-${result.status}`, role: 'status', 'data-test': 'test-result' },
        h('h2', {}, 'Test ping ', pill(result.status)),
        h('p', {}, result.response_status ? `HTTP ${result.response_status}` : result.error, ` in ${result.duration_ms} ms. `,
          h('a', { href: `#/endpoints/${endpoint.id}/deliveries/${result.id}` }, 'See the request and response')),
        result.error && result.response_status ? h('p', {}, result.error) : null));
      await deliveries.reset();
    }));
    const edit = h('button', { type: 'button', class: 'secondary' }, 'Edit');
    edit.addEventListener('click', async () => {
      const form = await endpointForm({
        title: 'Edit endpoint', submitLabel: 'Save', initial: endpoint,
        async submit(body) {
          endpoint = await api('POST', `/v1/webhook_endpoints/${endpoint.id}`, body);
          fill(panel);
          toast('Endpoint saved.');
          drawHead();
        },
        cancel: () => fill(panel),
      });
      fill(panel, form);
      form.querySelector('input').focus();
    });
    const reveal = h('button', { type: 'button', class: 'secondary' }, 'Reveal secret');
    reveal.addEventListener('click', () => busy(reveal, async () => {
      const { secret } = await api('GET', `/v1/webhook_endpoints/${endpoint.id}/secret`);
      fill(panel, h('div', { class: 'card', role: 'region', 'aria-label': 'Signing secret' },
        h('h2', {}, 'Signing secret'),
        h('p', {}, 'The secret that signs this endpoint\'s deliveries now.'),
        h('div', { class: 'secret-row' }, h('code', { class: 'secret', 'data-test': 'revealed-secret' }, secret), copyButton(secret))));
    }));
    const rotate = h('button', { type: 'button', class: 'secondary' }, 'Rotate secret');
    rotate.addEventListener('click', () => fill(panel, rotateForm()));
    const recover = h('button', { type: 'button', class: 'secondary' }, 'Recover failed');
    recover.addEventListener('click', () => fill(panel, recoverForm()));
    const replay = h('a', { class: 'button secondary', href: `#/replays${query({ new: 1, endpoint: endpoint.id })}` }, 'Replay failed deliveries');
    const del = h('button', { type: 'button', class: 'danger' }, 'Delete');
    del.addEventListener('click', async () => {
      if (!(await confirmDialog(`Delete ${endpoint.url}? Its pending deliveries end now. This cannot be undone.`, 'Delete endpoint'))) return;
      await busy(del, async () => {
        await api('DELETE', `/v1/webhook_endpoints/${endpoint.id}`);
        toast('Endpoint deleted.');
        location.hash = '#/endpoints';
      });
    });
    fill(head,
      h('div', { class: 'view-head' }, h('h1', { class: endpoint.name ? '' : 'url' }, endpoint.name || endpoint.url), pill(endpoint.status),
        endpoint.health === 'degraded' ? pill('degraded') : null, endpoint.kind === 'listener' ? pill('listener') : null),
      endpoint.kind === 'listener'
        ? h('p', { class: 'notice', 'data-test': 'listener-note' }, 'A stile listen endpoint: deliveries go to the CLI connected with its key, and wait while none is.')
        : null,
      endpoint.disabled_reason
        ? h('p', { class: 'notice', role: 'status', 'data-test': 'disabled-reason' }, 'Disabled by stile: ', endpoint.disabled_reason,
          '. Enable it once the endpoint works again; its waiting retries then go.')
        : null,
      endpoint.health === 'degraded'
        ? h('p', { class: 'notice' }, 'Its latest attempts are failing, since ', timeCell(endpoint.failing_since), '.')
        : null,
      h('dl', { class: 'facts' },
        h('dt', {}, 'ID'), h('dd', {}, h('code', {}, endpoint.id)),
        h('dt', {}, 'URL'), h('dd', { class: 'url' }, endpoint.url),
        h('dt', {}, 'Labels'), h('dd', {}, endpoint.labels.length ? endpoint.labels.map(labelChip) : '—'),
        h('dt', {}, 'Events'), h('dd', {}, endpoint.enabled_events.includes('*') ? 'all events' : endpoint.enabled_events.join(', ')),
        h('dt', {}, 'Description'), h('dd', {}, endpoint.description || '—'),
        h('dt', {}, 'Metadata'), h('dd', {}, Object.keys(endpoint.metadata || {}).length ? jsonBlock(endpoint.metadata) : '—'),
        h('dt', {}, 'Flow'), h('dd', { 'data-test': 'flow' }, flowText(endpoint)),
        h('dt', {}, 'Authentication'), h('dd', { 'data-test': 'authentication' }, authText(endpoint.authentication)),
        h('dt', {}, 'Client certificate'), h('dd', { 'data-test': 'client-certificate' }, endpoint.client_certificate
          ? h('code', {}, `SHA-256 ${endpoint.client_certificate.fingerprint_sha256}`) : '—'),
        h('dt', {}, 'Headers'), h('dd', { 'data-test': 'headers' }, Object.keys(endpoint.headers || {}).length ? jsonBlock(endpoint.headers) : '—'),
        h('dt', {}, 'Filter'), h('dd', { 'data-test': 'filter' }, endpoint.filter ? jsonBlock(endpoint.filter) : 'none: every event of its types'),
        h('dt', {}, 'Transformation'), h('dd', {}, transformationFacts(endpoint)),
        h('dt', {}, 'Created'), h('dd', {}, timeCell(endpoint.created))),
      h('div', { class: 'actions' }, test, edit, toggle, reveal, rotate, recover, replay, del));
  }

  function rotateForm() {
    const grace = h('select', { name: 'expires_in' },
      h('option', { value: '' }, 'Stop signing with the old secret now'),
      h('option', { value: '1h' }, 'Keep the old secret for 1 hour'),
      h('option', { value: '24h', selected: true }, 'Keep the old secret for 24 hours'),
      h('option', { value: '168h' }, 'Keep the old secret for 7 days'));
    const error = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card form', 'aria-label': 'Rotate secret' },
      h('h2', {}, 'Rotate the signing secret'),
      h('p', {}, 'While the old secret is kept, deliveries carry signatures of both, so receivers can switch without failures.'),
      field('Old secret', grace), error,
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Rotate'),
        h('button', { type: 'button', class: 'secondary', onclick: () => fill(panel) }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const body = grace.value ? { expires_in: grace.value } : {};
        const rotated = await api('POST', `/v1/webhook_endpoints/${endpoint.id}/rotate_secret`, body);
        fill(panel, secretOnce(rotated, 'Secret rotated'));
      } catch (err) {
        fill(error, errorBox(err));
      }
    });
    return form;
  }

  /** Resends what failed for good in a chosen window, after a dry run has counted it. */
  function recoverForm() {
    const span = h('select', { name: 'since' },
      h('option', { value: String(3600) }, 'In the last hour'),
      h('option', { value: String(DAY), selected: true }, 'In the last 24 hours'),
      h('option', { value: String(7 * DAY) }, 'In the last 7 days'),
      h('option', { value: String(30 * DAY) }, 'In the last 30 days'));
    const count = h('p', { 'data-test': 'recover-count', 'aria-live': 'polite' }, 'Counting…');
    const submit = h('button', { type: 'submit', disabled: true }, 'Resend failed events');
    const path = `/v1/webhook_endpoints/${endpoint.id}/recover`;
    // The resend uses the `since` the shown count was made with, so it resends what was
    // counted; a count answered after the window changed again is dropped.
    let counted;
    async function countFailed() {
      submit.disabled = true;
      const since = Math.floor(Date.now() / 1000) - Number(span.value);
      counted = since;
      try {
        const dry = await api('POST', path, { since, dry_run: true });
        if (counted !== since) return;
        count.textContent = dry.events === 0
          ? 'No event failed for good in that time.'
          : `${dry.events}${dry.has_more ? '+' : ''} ${dry.events === 1 ? 'event' : 'events'} failed for good in that time.`;
        submit.disabled = dry.events === 0;
      } catch (err) {
        if (counted === since) fill(count, errorBox(err));
      }
    }
    span.addEventListener('change', countFailed);
    const form = h('form', { class: 'card form', 'aria-label': 'Recover failed deliveries' },
      h('h2', {}, 'Recover failed deliveries'),
      h('p', {}, 'Resends every event whose delivery to this endpoint failed for good (every retry used) as a new delivery, with the same event id and body.'),
      field('Failed', span), count,
      h('div', { class: 'actions' }, submit,
        h('button', { type: 'button', class: 'secondary', onclick: () => fill(panel) }, 'Cancel')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      busy(submit, async () => {
        const done = await api('POST', path, { since: counted });
        fill(panel);
        toast(`Resent ${done.events} ${done.events === 1 ? 'event' : 'events'}${done.has_more ? '; more are left, recover again' : ''}.`);
        await deliveries.reset();
      });
    });
    countFailed();
    return form;
  }

  drawHead();
  await Promise.all([drawFlow(), drawTold()]);
  return { refresh: () => Promise.all([deliveries.refresh(), drawFlow(), drawTold()]) };
}

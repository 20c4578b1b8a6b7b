// The dashboard shell: sign-in, hash routing, and live refresh of the current view.

import { api, chooseApp, currentApp, currentKey, forgetKey, modeOfKey, rememberKey, whenUnauthorized } from './api.js';
import { startRouter } from './router.js';
import { errorBox, field, fill, h, toast } from './ui.js';
import * as overview from './views/overview.js';
import * as endpoints from './views/endpoints.js';
import * as deliveries from './views/deliveries.js';
import * as events from './views/events.js';
import * as replays from './views/replays.js';
import * as sessions from './views/sessions.js';
import * as apps from './views/apps.js';
import * as eventTypes from './views/event_types.js';
import * as settings from './views/settings.js';

/** Routes: a pattern of path segments (':x' captures), the view, and its nav section. */
const ROUTES = [
  [['overview'], overview.render, 'overview'],
  [['endpoints'], endpoints.renderList, 'endpoints'],
  [['endpoints', ':id'], endpoints.renderDetail, 'endpoints'],
  [['endpoints', ':id', 'deliveries', ':delivery'], deliveries.renderDetail, 'endpoints'],
  [['deliveries'], deliveries.renderAll, 'deliveries'],
  [['replays'], replays.renderList, 'replays'],
  [['replays', ':id'], replays.renderDetail, 'replays'],
  [['events'], events.renderList, 'events'],
  [['events', ':id'], events.renderDetail, 'events'],
  [['event-types'], eventTypes.render, 'event-types'],
  [['sessions'], sessions.render, 'sessions'],
  [['apps'], apps.renderList, 'apps'],
  [['apps', ':id'], apps.renderDetail, 'apps'],
  [['settings'], settings.render, 'settings'],
];

const main = document.getElementById('main');

/** The router, once started (the first page is drawn while it starts). */
let router = null;

/** Draws a page only once signed in (else the sign-in form). */
function ready() {
  if (!currentKey()) {
    showSignIn();
    return false;
  }
  showAccount();
  return true;
}

function showAccount() {
  const mode = modeOfKey(currentKey()) || 'test';
  const badge = document.getElementById('mode-badge');
  badge.textContent = mode === 'live' ? 'LIVE' : 'TEST';
  badge.className = `badge badge-${mode}`;
  badge.title = mode === 'live' ? 'Signed in with a live key: real data' : 'Signed in with a test key: test data';
  document.getElementById('nav').hidden = false;
  document.getElementById('account').hidden = false;
  document.body.classList.toggle('live', mode === 'live');
  // Once per key, not per page: the list changes only with 'stile:apps-changed'.
  if (switcherKey !== currentKey()) {
    switcherKey = currentKey();
    fillAppSwitcher().catch(() => { switcherKey = null; });
  }
}

/** The key the switcher was filled for. */
let switcherKey = null;

const switcher = document.getElementById('app-switcher');
const switcherFind = document.getElementById('app-switcher-find');

/** From this many applications on, a search box narrows the switcher's list. */
const SWITCHER_SEARCH_FROM = 6;

/** The mode's applications, the default first, then by name (filled per key). */
let switcherApps = [];

/** Lists the mode's applications in the switcher. */
async function fillAppSwitcher() {
  const all = await apps.allApps();
  all.sort((a, b) => (b.default - a.default) || a.name.localeCompare(b.name));
  if (currentApp() && !all.some((a) => a.id === currentApp())) chooseApp(null);
  switcherApps = all;
  switcher.hidden = all.length < 2;
  switcherFind.hidden = all.length < SWITCHER_SEARCH_FROM;
  if (switcherFind.hidden) switcherFind.value = '';
  showSwitcherOptions();
}

/** Fills the switcher with the applications whose name or uid holds the search text
 * (the chosen one always stays, so the select never shows another app than the data). */
function showSwitcherOptions() {
  const chosen = currentApp();
  const wanted = switcherFind.value.trim().toLowerCase();
  const matches = (a) => !wanted || a.name.toLowerCase().includes(wanted) || (a.uid || '').toLowerCase().includes(wanted);
  const isChosen = (a) => a.id === chosen || (a.default && !chosen);
  fill(switcher, switcherApps.filter((a) => isChosen(a) || matches(a)).map((a) => h('option', {
    value: a.default ? '' : a.id,
    selected: isChosen(a),
  }, a.uid ? `${a.name} (${a.uid})` : a.name)));
}

switcherFind.addEventListener('input', showSwitcherOptions);

// A view created, renamed, deleted or switched to an application.
window.addEventListener('stile:apps-changed', () => { fillAppSwitcher().catch(() => {}); });

switcher.addEventListener('change', () => {
  chooseApp(switcher.value || null);
  route();
});

function showSignIn(message) {
  if (router) router.clear();
  switcherKey = null;
  document.getElementById('nav').hidden = true;
  document.getElementById('account').hidden = true;
  const input = h('input', {
    id: 'api-key', type: 'password', name: 'api_key', autocomplete: 'off', required: true,
    placeholder: 'vk_test_...', spellcheck: 'false',
  });
  const error = h('div', { 'aria-live': 'polite' }, message ? errorBox(message) : null);
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to stile'),
    h('p', {}, 'Paste an API key. stile printed a test key when it first started; ',
      h('code', {}, 'stile keys create --mode test'), ' makes another. The key stays in this tab only (sessionStorage).'),
    field('API key', input),
    error,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    fill(error);
    if (!modeOfKey(key)) {
      fill(error, errorBox('That is not a stile API key: keys start with vk_test_ or vk_live_.'));
      return;
    }
    submit.disabled = true;
    try {
      await api('GET', '/v1/webhook_endpoints?limit=1', undefined, key);
      rememberKey(key);
      if (!location.hash || location.hash === '#/') location.hash = '#/overview';
      await route();
      main.focus();
    } catch (err) {
      fill(error, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  fill(main, form);
  input.focus();
}

document.getElementById('sign-out').addEventListener('click', () => {
  forgetKey();
  location.hash = '';
  showSignIn();
});

whenUnauthorized((err) => {
  forgetKey();
  showSignIn(`Signed out: ${err.message}`);
});

window.addEventListener('unhandledrejection', (e) => {
  toast(e.reason && e.reason.message ? e.reason.message : 'Something went wrong.', 'error');
});

router = startRouter({ routes: ROUTES, home: 'overview', ready });

/** Draws the page for the current hash. */
function route() {
  return router.route();
}

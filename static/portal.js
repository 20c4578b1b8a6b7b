// The app portal shell: one application's customer manages their own webhook endpoints
// with the dashboard's own views, signed in by the portal link's token (never a key).

import { api, currentKey, forgetKey, rememberKey, useCredential, whenUnauthorized } from './api.js';
import { startRouter } from './router.js';
import { fill, h, toast } from './ui.js';
import * as endpoints from './views/endpoints.js';
import * as deliveries from './views/deliveries.js';
import * as events from './views/events.js';
import * as replays from './views/replays.js';
import * as eventTypes from './views/event_types.js';

useCredential('stile.portal_token', { app: false });

/** The application's name, kept for the expired-link message. */
const APP_NAME_KEY = 'stile.portal_app_name';

// The link carries the token in its fragment: keep it for this tab, and take it out of
// the address bar (and so out of the history and any screenshot).
const fromLink = /^#token=([A-Za-z0-9_]+)$/.exec(location.hash);
if (fromLink) {
  rememberKey(fromLink[1]);
  history.replaceState(null, '', `${location.pathname}#/endpoints`);
}

const ROUTES = [
  [['endpoints'], endpoints.renderList, 'endpoints'],
  [['endpoints', ':id'], endpoints.renderDetail, 'endpoints'],
  [['endpoints', ':id', 'deliveries', ':delivery'], deliveries.renderDetail, 'endpoints'],
  [['deliveries'], deliveries.renderAll, 'deliveries'],
  [['replays'], replays.renderList, 'replays'],
  [['replays', ':id'], replays.renderDetail, 'replays'],
  [['events'], events.renderList, 'events'],
  [['events', ':id'], events.renderDetail, 'events'],
  [['event-types'], eventTypes.render, 'event-types'],
];

let router = null;
let session = null;

/** Shows why there is nothing to show, in words the customer can act on. */
function signedOut(message) {
  if (router) router.clear();
  document.getElementById('nav').hidden = true;
  document.getElementById('account').hidden = true;
  const app = sessionStorage.getItem(APP_NAME_KEY);
  fill(document.getElementById('main'), h('div', { class: 'card signin', role: 'alert', 'data-test': 'portal-signed-out' },
    h('h1', {}, 'This link cannot be used'),
    h('p', {}, message),
    h('p', {}, `Ask ${app || 'the service that sent you this link'} for a new one.`)));
}

/**
 * Shows the application's branding: its name (or display name), its logo, its accent
 * colour (a CSS custom property set through the CSSOM, which the strict CSP allows).
 */
function applyBranding(appName, branding) {
  const name = branding.display_name || appName;
  sessionStorage.setItem(APP_NAME_KEY, name);
  const brand = document.getElementById('portal-brand');
  const logo = branding.logo_url ? h('img', { class: 'portal-logo', src: branding.logo_url, alt: '' }) : null;
  fill(brand, logo, `${name} · Webhooks`);
  document.title = `${name} · Webhooks`;
  if (branding.accent_color) document.documentElement.style.setProperty('--accent', branding.accent_color);
}

/** Draws a page once the session is known (read once per token). */
function ready() {
  if (!currentKey()) {
    signedOut('This page opens from a portal link, and this tab has none.');
    return false;
  }
  if (!session) {
    api('GET', '/v1/portal_session').then((s) => {
      session = s;
      applyBranding(s.app.name, s.branding);
      document.body.classList.toggle('read-only', s.read_only);
      const badge = document.getElementById('portal-access');
      badge.textContent = s.read_only ? 'READ ONLY' : '';
      badge.hidden = !s.read_only;
      document.getElementById('nav').hidden = false;
      document.getElementById('account').hidden = false;
      router.route();
    }).catch((err) => {
      if (err.status !== 401) signedOut(err.message);
    });
    return false;
  }
  return true;
}

whenUnauthorized((err) => {
  forgetKey();
  session = null;
  const expired = err.body && err.body.error && err.body.error.code === 'portal_session_expired';
  signedOut(expired ? 'This link has expired.' : err.message);
});

window.addEventListener('unhandledrejection', (e) => {
  toast(e.reason && e.reason.message ? e.reason.message : 'Something went wrong.', 'error');
});

router = startRouter({ routes: ROUTES, home: 'endpoints', ready });

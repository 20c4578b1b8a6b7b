// Hash routing and the live refresh of the view on screen, shared by the dashboard and
// the app portal: each gives its routes and what must hold before a page is drawn.

import { errorBox, fill, h } from './ui.js';

/** How often the view on screen refreshes itself, in ms. */
const REFRESH_MS = 2000;

/**
 * Starts routing on `location.hash`. `routes` are [segments, view, section] (':x' in a
 * segment captures it); `home` is the path of the start page; `ready()` says whether a
 * page may be drawn now (else it has drawn the sign-in or an explanation itself).
 * Returns `route()` (draw the page for the current hash) and `clear()` (forget the view).
 */
export function startRouter({ routes, home, ready }) {
  const main = document.getElementById('main');
  let current = null;
  let renderSeq = 0;

  function match(segments) {
    for (const [pattern, view, section] of routes) {
      if (pattern.length !== segments.length) continue;
      const params = {};
      const ok = pattern.every((p, i) => {
        if (p.startsWith(':')) {
          params[p.slice(1)] = decodeURIComponent(segments[i]);
          return true;
        }
        return p === segments[i];
      });
      if (ok) return { view, params, section };
    }
    return null;
  }

  async function route() {
    if (!ready()) {
      current = null;
      return;
    }
    const path = location.hash.replace(/^#\/?/, '');
    const [pathPart, queryPart] = path.split('?');
    const segments = pathPart ? pathPart.split('/').filter(Boolean) : [home];
    const found = match(segments);
    for (const link of document.querySelectorAll('#nav a')) {
      if (found && link.dataset.section === found.section) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    const seq = ++renderSeq;
    current = null;
    if (!found) {
      fill(main, h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. '), h('a', { href: `#/${home}` }, 'Go to the start page'));
      return;
    }
    const container = h('div', { class: 'view' });
    fill(main, container);
    try {
      const view = await found.view(container, found.params, new URLSearchParams(queryPart || ''));
      if (seq === renderSeq) current = view || null;
    } catch (err) {
      if (seq === renderSeq) fill(container, errorBox(err));
    }
  }

  async function tick() {
    if (current && current.refresh && document.visibilityState === 'visible') {
      const view = current;
      try {
        await view.refresh();
      } catch (err) {
        // A failed refresh leaves what is shown; the next one may succeed.
        if (err.status !== 401) console.warn('refresh failed:', err.message);
      }
    }
    setTimeout(tick, REFRESH_MS);
  }

  window.addEventListener('hashchange', route);
  route();
  setTimeout(tick, REFRESH_MS);
  return { route, clear: () => { current = null; } };
}

// A cursor-paginated list that can refresh itself in place (for live updates).

import { errorBox, fill, h, pager, patch } from './ui.js';

/**
 * Shows pages from `load(startingAfter)` (which resolves to an API list) in
 * `container`, drawn by `render(items)` (give rows a `data-key`, so a refresh that adds
 * a row keeps the others); `empty()` draws the first page when it has no
 * items. Returns { refresh, reset }: refresh reloads the page on screen, reset goes back
 * to the newest page.
 */
export function pagedList(container, { load, render, empty }) {
  const cursors = [];
  let generation = 0;

  async function refresh() {
    const mine = ++generation;
    let page;
    try {
      page = await load(cursors[cursors.length - 1]);
    } catch (err) {
      if (mine === generation) fill(container, errorBox(err));
      throw err;
    }
    if (mine !== generation) return;
    // A search can answer a page with no match yet and more to read after it.
    if (page.data.length === 0 && cursors.length === 0 && !page.has_more) {
      patch(container, empty());
      return;
    }
    // Patched, not replaced: focus and selection in the list survive a live refresh.
    patch(container, render(page.data), pager({
      hasPrev: cursors.length > 0,
      hasMore: page.has_more,
      onPrev: () => { cursors.pop(); refresh().catch(() => {}); },
      // A search says where it stopped reading (`next_cursor`); other lists go on from
      // their last item.
      onNext: () => { cursors.push(page.next_cursor || page.data[page.data.length - 1].id); refresh().catch(() => {}); },
    }));
  }

  return {
    refresh,
    reset() {
      cursors.length = 0;
      return refresh();
    },
  };
}

/** A placeholder while the first page loads. */
export function loading() {
  return h('p', { class: 'muted' }, 'Loading…');
}

// Small DOM helpers shared by every view. Everything is built with DOM calls, never
// innerHTML, so API data cannot inject markup.

/** Creates an element: h('a', {href: '#/x', class: 'y', onclick: fn}, 'text', child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      listen(el, name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * Handlers go through one listener per event that calls the element's current handler,
 * so `patch` can give a kept element the handler of the freshly built one (whose closure
 * holds the new data).
 */
function listen(el, event, handler) {
  if (!el.handlers) el.handlers = {};
  if (!el.handlers[event]) el.addEventListener(event, (e) => el.handlers[event](e));
  el.handlers[event] = handler;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the contents of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Makes the contents of `el` what `children` describe, changing only what differs: the
 * live refresh redraws through this, so the element with keyboard focus, a text
 * selection, an open <details> or a half-typed input survive a refresh. Elements with a
 * `data-key` are matched by key (a list that gains a row at the top keeps its other
 * rows), others by position and tag.
 */
export function patch(el, ...children) {
  const wanted = [];
  const holder = document.createElement('div');
  append(holder, children);
  wanted.push(...holder.childNodes);
  patchChildren(el, wanted);
  return el;
}

function keyOf(node) {
  return node.nodeType === Node.ELEMENT_NODE ? node.getAttribute('data-key') : null;
}

function patchChildren(parent, wanted) {
  const keyed = new Map();
  for (const child of parent.childNodes) {
    const key = keyOf(child);
    if (key !== null) keyed.set(key, child);
  }
  let position = 0;
  for (const next of wanted) {
    const key = keyOf(next);
    let current = parent.childNodes[position];
    if (key !== null) {
      const match = keyed.get(key);
      if (match && match.nodeName === next.nodeName) {
        if (match !== current) parent.insertBefore(match, current || null);
        current = match;
      } else {
        current = null;
      }
    } else if (current && (keyOf(current) !== null || current.nodeName !== next.nodeName || current.nodeType !== next.nodeType)) {
      current = null;
    }
    if (current) {
      patchNode(current, next);
    } else {
      parent.insertBefore(next, parent.childNodes[position] || null);
    }
    position += 1;
  }
  while (parent.childNodes.length > position) parent.lastChild.remove();
}

function patchNode(current, next) {
  if (current.nodeType !== Node.ELEMENT_NODE) {
    if (current.nodeValue !== next.nodeValue) current.nodeValue = next.nodeValue;
    return;
  }
  for (const { name } of [...current.attributes]) {
    if (!next.hasAttribute(name)) current.removeAttribute(name);
  }
  for (const { name, value } of next.attributes) {
    if (current.getAttribute(name) !== value) current.setAttribute(name, value);
  }
  for (const [event, handler] of Object.entries(next.handlers || {})) listen(current, event, handler);
  // A control's current value (what the person typed or chose) is theirs: only its
  // attributes are brought up to date, never the value property.
  patchChildren(current, [...next.childNodes]);
}

/** An SVG element (for charts). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

/** A Unix time as local date and time. */
export function formatTime(unix) {
  if (unix === null || unix === undefined) return '—';
  return new Date(unix * 1000).toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** Unix seconds from a datetime-local input (local time), or undefined when empty. */
export function unixOf(input) {
  return input.value ? Math.floor(new Date(input.value).getTime() / 1000) : undefined;
}

/** A Unix time relative to now: "12 s ago", "in 5 min". */
export function relativeTime(unix) {
  if (unix === null || unix === undefined) return '—';
  const diff = Math.round(unix - Date.now() / 1000);
  const abs = Math.abs(diff);
  const [n, unit] = abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min']
    : abs < 86400 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  return diff >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

/** A <time> element showing a relative time, with the full time as its title. */
export function timeCell(unix) {
  if (unix === null || unix === undefined) return '—';
  return h('time', { datetime: new Date(unix * 1000).toISOString(), title: formatTime(unix) }, relativeTime(unix));
}

/** A coloured status pill. */
export function pill(status) {
  return h('span', { class: `pill pill-${status}` }, status);
}

/** A percentage with no decimals, or an em dash when there is nothing to divide. */
export function percent(part, whole) {
  return whole > 0 ? `${Math.round((100 * part) / whole)}%` : '—';
}

let toastTimer = null;

/** Shows a short message at the top of the page. */
export function toast(message, kind = 'info') {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.className = `toast toast-${kind}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

/** An error box with the API's message. */
export function errorBox(err) {
  return h('div', { class: 'error', role: 'alert' }, err && err.message ? err.message : String(err));
}

/** A copy-to-clipboard button for `text`. */
export function copyButton(text, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'secondary small', 'aria-label': `${label} to clipboard` }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      // Clipboard access can be refused (no https, no permission): select it instead.
      button.textContent = 'Select and copy';
    }
  });
  return button;
}

/** Asks a yes/no question in a modal dialog; resolves to true when confirmed. */
export function confirmDialog(question, confirmLabel = 'Confirm') {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-label': 'Confirm' },
      h('p', {}, question),
      h('form', { method: 'dialog', class: 'actions' },
        h('button', { value: 'cancel', class: 'secondary' }, 'Cancel'),
        h('button', { value: 'confirm', class: 'danger', 'data-test': 'confirm' }, confirmLabel)));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'confirm');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A labelled form field: label text above the control. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label), control, hint ? h('small', { class: 'hint' }, hint) : null);
}

/** Previous / next buttons for a cursor-paginated list. */
export function pager({ hasPrev, hasMore, onPrev, onNext }) {
  return h('div', { class: 'pager' },
    h('button', { type: 'button', class: 'secondary small', disabled: !hasPrev, onclick: onPrev }, '← Newer'),
    h('button', { type: 'button', class: 'secondary small', disabled: !hasMore, onclick: onNext }, 'Older →'));
}

/** An empty state: what this is and what to do next. */
export function emptyState(title, ...next) {
  return h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, title), ...next);
}

/** A table from column headers and rows of cells. */
export function table(caption, headers, rows, rowAttrs = () => ({})) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headers.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((row, i) => h('tr', rowAttrs(i), row.map((cell) => h('td', {}, cell)))))));
}

/** Pretty-printed JSON in a scrollable block. */
export function jsonBlock(value) {
  let text = value;
  if (typeof value !== 'string') text = JSON.stringify(value, null, 2);
  else {
    try { text = JSON.stringify(JSON.parse(value), null, 2); } catch { text = value; }
  }
  return h('pre', { class: 'json', tabindex: '0' }, text);
}

/** Runs an async action from a button: disables it meanwhile, reports errors. */
export async function busy(button, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (err) {
    toast(err.message, 'error');
    return undefined;
  } finally {
    button.disabled = false;
  }
}

/**
 * Pairs typed one per line as `key<sep>value` (`what` names them in the error): the
 * object, or an Error naming the first line that is not a pair.
 */
export function parsePairs(text, sep, what) {
  const pairs = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(sep);
    if (at <= 0) return new Error(`${what} line "${line}" must look like key${sep}value.`);
    pairs[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return pairs;
}

/** Pairs as `parsePairs` reads them. */
export function pairsText(pairs, sep) {
  return Object.entries(pairs || {}).map(([k, v]) => `${k}${sep}${v}`).join('\n');
}

/** Metadata typed as one `key=value` per line (see `parsePairs`). */
export function parseMetadata(text) {
  return parsePairs(text, '=', 'Metadata');
}

/** Metadata as `parseMetadata` reads it. */
export function metadataText(meta) {
  return pairsText(meta, '=');
}

/**
 * Handles a form's submit: `build()` makes the request body (or returns an Error, which is
 * shown), then `submit(body)` sends it, with `button` disabled meanwhile and an API error
 * shown in `error`.
 */
export function onSubmit(form, button, error, build, submit) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fill(error);
    const body = build();
    if (body instanceof Error) {
      fill(error, errorBox(body));
      return;
    }
    button.disabled = true;
    try {
      await submit(body);
    } catch (err) {
      fill(error, errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
}

// The API client: the key lives in sessionStorage only, every call sends it, and every
// failure becomes an ApiError carrying the API's own message.

const KEY_NAME = 'stile.api_key';

/** The signed-in key, or null. */
export function currentKey() {
  return sessionStorage.getItem(KEY_NAME);
}

/** Remembers the key for this tab's session. */
export function rememberKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

/** Forgets the key. */
export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

/** 'test', 'live', or null for a key of neither kind. */
export function modeOfKey(key) {
  if (key.startsWith('vk_test_')) return 'test';
  if (key.startsWith('vk_live_')) return 'live';
  return null;
}

/** A failed call: `message` is the API's message when it gave one. */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    super(body && body.error && body.error.message ? body.error.message : fallback);
    this.status = status;
    this.body = body;
  }
}

let onUnauthorized = () => {};

/** Sets what happens when the key stops being accepted (a 401). */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/** Calls the API with the current key (or `key`); resolves to the parsed JSON body. */
export async function api(method, path, body, key = currentKey()) {
  const init = { method, headers: { Authorization: `Bearer ${key}` } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, null, `The stile server cannot be reached (${err.message}).`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, json, `The server answered HTTP ${response.status}.`);
    if (response.status === 401 && key === currentKey()) onUnauthorized(error);
    throw error;
  }
  return json;
}

/** Builds a query string from the non-empty entries of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

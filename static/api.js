// The API client: the key lives in sessionStorage only, every call sends it, and every
// failure becomes an ApiError carrying the API's own message.

let KEY_NAME = 'stile.api_key';
const APP_NAME = 'stile.app';

/** Whether calls name the chosen application (`Stile-App`); the portal's token names its own. */
let sendApp = true;

/**
 * Makes every call use the credential kept under `credential` in sessionStorage, naming
 * an application only if `app` (the app portal: its token, and no `Stile-App`).
 */
export function useCredential(credential, { app = true } = {}) {
  KEY_NAME = credential;
  sendApp = app;
}

/** The signed-in key, or null. */
export function currentKey() {
  return sessionStorage.getItem(KEY_NAME);
}

/** Remembers the key for this tab's session. */
export function rememberKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

/** Forgets the key (and the application chosen with it). */
export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
  sessionStorage.removeItem(APP_NAME);
}

/** The application the dashboard acts on (its id), or null for the mode's default. */
export function currentApp() {
  return sessionStorage.getItem(APP_NAME);
}

/** Chooses the application every call acts on; null goes back to the default. */
export function chooseApp(id) {
  if (id) sessionStorage.setItem(APP_NAME, id);
  else sessionStorage.removeItem(APP_NAME);
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
  const app = currentApp();
  if (sendApp && app && key === currentKey()) init.headers['Stile-App'] = app;
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
    // The chosen application is gone (or belongs to another mode): back to the default.
    if (response.status === 404 && json && json.error && json.error.param === 'Stile-App') {
      // The chosen application is gone: back to the default, and the switcher lists afresh.
      chooseApp(null);
      window.dispatchEvent(new Event('stile:apps-changed'));
    }
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

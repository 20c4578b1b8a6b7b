'use strict';
// @stile/node: the Node.js client of the Stile API, and webhook signature verification.
// No runtime dependencies: Node 18+ (global fetch, Web Request, node:crypto).

const crypto = require('node:crypto');

const VERSION = '0.1.0';
const DEFAULT_BASE_URL = 'http://127.0.0.1:8787';
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RETRIES = 2;
const DEFAULT_TOLERANCE_SECONDS = 300;
/** The longest wait between retries, whatever Retry-After says. */
const MAX_RETRY_DELAY_MS = 60_000;

// ---------------------------------------------------------------------------------------
// Errors

/** An error answered by the Stile API (or met reaching it). */
class StileError extends Error {
  constructor(message, fields = {}) {
    super(message);
    this.name = this.constructor.name;
    /** `invalid_request_error`, `authentication_error`, ... (the API's `error.type`). */
    this.type = fields.type;
    /** The API's `error.code`, e.g. `resource_missing`. */
    this.code = fields.code;
    /** The parameter at fault, if any. */
    this.param = fields.param;
    /** The HTTP status. */
    this.statusCode = fields.statusCode;
    /** The server's `Request-Id` header, if it sent one. */
    this.requestId = fields.requestId;
    /** The parsed error body. */
    this.raw = fields.raw;
    /** The response headers. */
    this.headers = fields.headers;
  }

  /** The subclass for an API error body and status. */
  static generate(body, statusCode, headers) {
    const error = (body && body.error) || {};
    const fields = {
      type: error.type,
      code: error.code,
      param: error.param,
      statusCode,
      requestId: headers ? headers.get('request-id') || undefined : undefined,
      raw: body,
      headers: headers ? Object.fromEntries(headers.entries()) : undefined,
    };
    const message = error.message || `Stile answered HTTP ${statusCode}`;
    switch (error.type) {
      case 'invalid_request_error':
        return new StileInvalidRequestError(message, fields);
      case 'authentication_error':
        return new StileAuthenticationError(message, fields);
      case 'permission_error':
        return new StilePermissionError(message, fields);
      case 'idempotency_error':
        return new StileIdempotencyError(message, fields);
      case 'rate_limit_error':
        return new StileRateLimitError(message, fields);
      default:
        if (statusCode === 429) return new StileRateLimitError(message, fields);
        return new StileAPIError(message, fields);
    }
  }
}

/** A request the API refused: a bad parameter, an unknown id (404), a wrong state. */
class StileInvalidRequestError extends StileError {}
/** No key, or a key the server does not know (401). */
class StileAuthenticationError extends StileError {}
/** A key that may not do this (403), e.g. an app-restricted key managing applications. */
class StilePermissionError extends StileError {}
/** An `Idempotency-Key` reused with another request, or still in use. */
class StileIdempotencyError extends StileError {}
/** Too many requests (429). */
class StileRateLimitError extends StileError {}
/** Something failed inside the server (5xx), or an answer that is not the API's. */
class StileAPIError extends StileError {}
/** The server could not be reached, or did not answer in time. */
class StileConnectionError extends StileError {}
/** A webhook whose signature does not verify (see `stile.webhooks`). */
class StileSignatureVerificationError extends StileError {
  constructor(message, fields = {}) {
    super(message, fields);
    /** The signature header received. */
    this.header = fields.header;
    /** The payload received. */
    this.payload = fields.payload;
  }
}

// ---------------------------------------------------------------------------------------
// Lists

/**
 * A list request: awaited, it is one page (`{ object, data, has_more, url }`); iterated
 * with `for await`, it yields every item of every page, fetching the next page (after the
 * last item's id) as it goes.
 */
function listRequest(fetchPage, params) {
  let first;
  const page = () => (first ??= fetchPage(params));
  return {
    then: (onFulfilled, onRejected) => page().then(onFulfilled, onRejected),
    catch: (onRejected) => page().catch(onRejected),
    finally: (onFinally) => page().finally(onFinally),
    async *[Symbol.asyncIterator]() {
      let current = await page();
      for (;;) {
        for (const item of current.data) yield item;
        if (!current.has_more || current.data.length === 0) return;
        const last = current.data[current.data.length - 1];
        current = await fetchPage({ ...params, starting_after: last.id, ending_before: undefined });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------
// The client

/** The Stile API client: `new Stile(apiKey, { baseURL, timeout, maxRetries, app })`. */
class Stile {
  constructor(apiKey, options = {}) {
    if (typeof apiKey === 'object' && apiKey !== null) {
      options = apiKey;
      apiKey = options.apiKey;
    }
    this._apiKey = apiKey || process.env.STILE_API_KEY;
    this._baseURL = (options.baseURL || process.env.STILE_API_BASE || DEFAULT_BASE_URL).replace(/\/+$/, '');
    this._timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this._maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    this._app = options.app;
    this._fetch = options.fetch || globalThis.fetch;
    if (typeof this._fetch !== 'function') {
      throw new StileError('@stile/node needs a global fetch (Node 18 or later), or a `fetch` option.');
    }

    this.webhookEndpoints = {
      create: (params, opts) => this._request('POST', '/v1/webhook_endpoints', { body: params, ...opts }),
      retrieve: (id, opts) => this._request('GET', `/v1/webhook_endpoints/${seg(id)}`, opts),
      update: (id, params, opts) => this._request('POST', `/v1/webhook_endpoints/${seg(id)}`, { body: params, ...opts }),
      del: (id, opts) => this._request('DELETE', `/v1/webhook_endpoints/${seg(id)}`, opts),
      list: (params, opts) => this._list('/v1/webhook_endpoints', params, opts),
      listDeliveries: (id, params, opts) => this._list(`/v1/webhook_endpoints/${seg(id)}/deliveries`, params, opts),
      retrieveDelivery: (id, deliveryId, opts) =>
        this._request('GET', `/v1/webhook_endpoints/${seg(id)}/deliveries/${seg(deliveryId)}`, opts),
      retryDelivery: (id, deliveryId, opts) =>
        this._request('POST', `/v1/webhook_endpoints/${seg(id)}/deliveries/${seg(deliveryId)}/retry`, { body: {}, ...opts }),
      rotateSecret: (id, params, opts) =>
        this._request('POST', `/v1/webhook_endpoints/${seg(id)}/rotate_secret`, { body: params || {}, ...opts }),
      revealSecret: (id, opts) => this._request('GET', `/v1/webhook_endpoints/${seg(id)}/secret`, opts),
      test: (id, params, opts) => this._request('POST', `/v1/webhook_endpoints/${seg(id)}/test`, { body: params || {}, ...opts }),
      recover: (id, params, opts) => this._request('POST', `/v1/webhook_endpoints/${seg(id)}/recover`, { body: params, ...opts }),
    };
    this.events = {
      create: (params, opts) => this._request('POST', '/v1/events', { body: params, ...opts }),
      retrieve: (id, opts) => this._request('GET', `/v1/events/${seg(id)}`, opts),
      list: (params, opts) => this._list('/v1/events', params, opts),
      listDeliveries: (id, opts) => this._request('GET', `/v1/events/${seg(id)}/deliveries`, opts),
      resend: (id, params, opts) => this._request('POST', `/v1/events/${seg(id)}/resend`, { body: params || {}, ...opts }),
    };
    this.eventTypes = {
      create: (params, opts) => this._request('POST', '/v1/event_types', { body: params, ...opts }),
      retrieve: (name, opts) => this._request('GET', `/v1/event_types/${seg(name)}`, opts),
      update: (name, params, opts) => this._request('POST', `/v1/event_types/${seg(name)}`, { body: params, ...opts }),
      archive: (name, opts) => this._request('DELETE', `/v1/event_types/${seg(name)}`, opts),
      list: (params, opts) => this._request('GET', '/v1/event_types', { query: params, ...opts }),
    };
    this.verificationSessions = {
      create: (params, opts) => this._request('POST', '/v1/verification_sessions', { body: params || {}, ...opts }),
      retrieve: (id, opts) => this._request('GET', `/v1/verification_sessions/${seg(id)}`, opts),
      list: (params, opts) => this._list('/v1/verification_sessions', params, opts),
      cancel: (id, opts) => this._request('POST', `/v1/verification_sessions/${seg(id)}/cancel`, { body: {}, ...opts }),
    };
    const helper = (action) => (id, opts) =>
      this._request('POST', `/v1/test_helpers/verification_sessions/${seg(id)}/${action}`, { body: {}, ...opts });
    this.testHelpers = {
      verificationSessions: {
        process: helper('process'),
        requireInput: helper('require_input'),
        verify: helper('verify'),
        fail: helper('fail'),
        expire: helper('expire'),
      },
    };
    this.apps = {
      create: (params, opts) => this._request('POST', '/v1/apps', { body: params, ...opts }),
      retrieve: (id, opts) => this._request('GET', `/v1/apps/${seg(id)}`, opts),
      update: (id, params, opts) => this._request('POST', `/v1/apps/${seg(id)}`, { body: params, ...opts }),
      del: (id, opts) => this._request('DELETE', `/v1/apps/${seg(id)}`, opts),
      list: (params, opts) => this._list('/v1/apps', params, opts),
      createPortalSession: (id, params, opts) =>
        this._request('POST', `/v1/apps/${seg(id)}/portal_sessions`, { body: params || {}, ...opts }),
    };
    this.webhooks = new Webhooks();
  }

  /** A client like this one acting on another application (`Stile-App`). */
  withApp(app) {
    const copy = new Stile(this._apiKey, {
      baseURL: this._baseURL,
      timeout: this._timeout,
      maxRetries: this._maxRetries,
      fetch: this._fetch,
      app,
    });
    return copy;
  }

  _list(path, params, opts) {
    return listRequest((query) => this._request('GET', path, { query, ...opts }), params || {});
  }

  /**
   * One API call, retried on network errors, 429 and 5xx (honouring Retry-After) up to
   * `maxRetries` times; a retried POST carries one generated Idempotency-Key throughout.
   */
  async _request(method, path, { body, query, idempotencyKey, app, timeout, maxRetries } = {}) {
    if (!this._apiKey) {
      throw new StileAuthenticationError(
        'No API key: pass one to `new Stile(apiKey)` or set STILE_API_KEY.',
        { type: 'authentication_error', code: 'api_key_missing' },
      );
    }
    const url = new URL(this._baseURL + path);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    const headers = {
      authorization: `Bearer ${this._apiKey}`,
      'user-agent': `stile-node/${VERSION} node/${process.versions.node}`,
      accept: 'application/json',
    };
    const scopedApp = app ?? this._app;
    if (scopedApp) headers['stile-app'] = scopedApp;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const retries = maxRetries ?? this._maxRetries;
    if (method === 'POST' && (idempotencyKey || retries > 0)) {
      headers['idempotency-key'] = idempotencyKey || `stile-node-retry-${crypto.randomUUID()}`;
    }
    const payload = body === undefined ? undefined : JSON.stringify(body);

    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await this._fetch(url, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(timeout ?? this._timeout),
        });
      } catch (cause) {
        if (attempt < retries) {
          await sleep(backoff(attempt, null));
          continue;
        }
        const reason = cause && cause.name === 'TimeoutError' ? 'did not answer in time' : 'could not be reached';
        const error = new StileConnectionError(`Stile at ${this._baseURL} ${reason}: ${cause && cause.message}`, {});
        error.cause = cause;
        throw error;
      }
      const text = await response.text();
      if (response.ok) {
        return text ? JSON.parse(text) : {};
      }
      const retriable = response.status === 429 || response.status >= 500;
      if (retriable && attempt < retries) {
        await sleep(backoff(attempt, response.headers.get('retry-after')));
        continue;
      }
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { error: { message: `Stile answered HTTP ${response.status}: ${text.slice(0, 200)}` } };
      }
      throw StileError.generate(parsed, response.status, response.headers);
    }
  }
}

/** A path segment, escaped. */
function seg(value) {
  return encodeURIComponent(String(value));
}

/** The wait before retry `attempt + 1`: Retry-After if the server said, else 0.5 s doubling, jittered. */
function backoff(attempt, retryAfter) {
  if (retryAfter) {
    const seconds = Number(retryAfter);
    const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - Date.now();
    if (Number.isFinite(ms)) return Math.min(Math.max(ms, 0), MAX_RETRY_DELAY_MS);
  }
  const base = Math.min(500 * 2 ** attempt, 8_000);
  return base * (0.75 + Math.random() * 0.5);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------
// Webhook verification

/** Verifying the `stile-signature` of deliveries stile sends. */
class Webhooks {
  /**
   * Verifies a delivery and returns its event. `payload` is the raw body (string or
   * Buffer, unmodified), `header` the `stile-signature` value. Throws
   * `StileSignatureVerificationError` unless one `v1=` signature matches `secret` and the
   * timestamp is within `toleranceSeconds` of now.
   */
  constructEvent(payload, header, secret, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS) {
    const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) || payload instanceof Uint8Array
      ? Buffer.from(payload).toString('utf8')
      : null;
    const fail = (message) => new StileSignatureVerificationError(message, { header, payload });
    if (body === null) {
      throw fail('The payload must be the raw request body, as a string or a Buffer, not a parsed object.');
    }
    if (typeof header !== 'string' || header === '') {
      throw fail('No stile-signature header: is this request from stile?');
    }
    if (typeof secret !== 'string' || secret === '') {
      throw fail("No signing secret given: pass the endpoint's secret (whsec_...).");
    }
    let timestamp = null;
    const signatures = [];
    for (const part of header.split(',')) {
      const [key, ...rest] = part.trim().split('=');
      const value = rest.join('=');
      if (key === 't') timestamp = value;
      else if (key === 'v1' && value) signatures.push(value);
    }
    if (timestamp === null || !/^\d+$/.test(timestamp)) {
      throw fail('The stile-signature header has no timestamp (t=...).');
    }
    if (signatures.length === 0) {
      throw fail('The stile-signature header has no v1 signature.');
    }
    const expected = crypto.createHmac('sha256', secret).update(`${timestamp}.`).update(body, 'utf8').digest();
    const matches = signatures.some((signature) => {
      const given = Buffer.from(signature, 'hex');
      return given.length === expected.length && crypto.timingSafeEqual(given, expected);
    });
    if (!matches) {
      throw fail(
        'No signature matches the payload with this secret: is it the raw body, and the secret of the endpoint that received it?',
      );
    }
    const age = Math.floor(Date.now() / 1000) - Number(timestamp);
    if (toleranceSeconds > 0 && Math.abs(age) > toleranceSeconds) {
      throw fail(`The signature's timestamp is ${age} s away from now, more than the tolerance of ${toleranceSeconds} s.`);
    }
    try {
      return JSON.parse(body);
    } catch {
      throw fail('The payload is signed but is not JSON.');
    }
  }

  /** Like `constructEvent`, from a Web `Request` (Next.js, Hono, Workers, Bun, Deno...). */
  async fromRequest(request, secret, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS) {
    const body = await request.text();
    const header = request.headers.get('stile-signature');
    return this.constructEvent(body, header, secret, toleranceSeconds);
  }

  /**
   * A `stile-signature` header for `payload`, as stile would send it: for tests of your
   * own webhook handler.
   */
  generateTestHeaderString({ payload, secret, timestamp = Math.floor(Date.now() / 1000) }) {
    const signature = crypto.createHmac('sha256', secret).update(`${timestamp}.${payload}`).digest('hex');
    return `t=${timestamp},v1=${signature}`;
  }
}

module.exports = Stile;
module.exports.default = Stile;
module.exports.Stile = Stile;
module.exports.Webhooks = Webhooks;
module.exports.StileError = StileError;
module.exports.StileInvalidRequestError = StileInvalidRequestError;
module.exports.StileAuthenticationError = StileAuthenticationError;
module.exports.StilePermissionError = StilePermissionError;
module.exports.StileIdempotencyError = StileIdempotencyError;
module.exports.StileRateLimitError = StileRateLimitError;
module.exports.StileAPIError = StileAPIError;
module.exports.StileConnectionError = StileConnectionError;
module.exports.StileSignatureVerificationError = StileSignatureVerificationError;

// Type declarations of @stile/node (CommonJS entry; index.d.mts re-exports them for ES
// modules). Written by hand from the Stile API; checked by `npm run typecheck`.

/** The Stile API client. */
declare class Stile {
  constructor(apiKey?: string, options?: Stile.StileOptions);
  constructor(options: Stile.StileOptions);

  /** A client acting on another application (`Stile-App`). */
  withApp(app: string): Stile;

  webhookEndpoints: {
    create(params: Stile.WebhookEndpointCreateParams, options?: Stile.RequestOptions): Promise<Stile.WebhookEndpointWithSecret>;
    retrieve(id: string, options?: Stile.RequestOptions): Promise<Stile.WebhookEndpoint>;
    update(id: string, params: Stile.WebhookEndpointUpdateParams, options?: Stile.RequestOptions): Promise<Stile.WebhookEndpoint>;
    del(id: string, options?: Stile.RequestOptions): Promise<Stile.DeletedObject>;
    list(params?: Stile.WebhookEndpointListParams, options?: Stile.RequestOptions): Stile.ListRequest<Stile.WebhookEndpoint>;
    listDeliveries(id: string, params?: Stile.DeliveryListParams, options?: Stile.RequestOptions): Stile.ListRequest<Stile.Delivery>;
    retrieveDelivery(id: string, deliveryId: string, options?: Stile.RequestOptions): Promise<Stile.Delivery>;
    retryDelivery(id: string, deliveryId: string, options?: Stile.RequestOptions): Promise<Stile.Delivery>;
    rotateSecret(
      id: string,
      params?: { expires_in?: string },
      options?: Stile.RequestOptions,
    ): Promise<Stile.WebhookEndpointWithSecret>;
    revealSecret(id: string, options?: Stile.RequestOptions): Promise<{ object: string; secret: string }>;
    test(id: string, params?: { event_type?: string }, options?: Stile.RequestOptions): Promise<Stile.Delivery>;
    recover(
      id: string,
      params: { since: number; dry_run?: boolean },
      options?: Stile.RequestOptions,
    ): Promise<Stile.Recovery>;
  };

  events: {
    create<Data = Record<string, unknown>>(params: Stile.EventCreateParams, options?: Stile.RequestOptions): Promise<Stile.Event<Data>>;
    retrieve<Data = Record<string, any>>(id: string, options?: Stile.RequestOptions): Promise<Stile.Event<Data>>;
    list(params?: Stile.EventListParams, options?: Stile.RequestOptions): Stile.ListRequest<Stile.Event<Record<string, any>>>;
    listDeliveries(id: string, options?: Stile.RequestOptions): Promise<Stile.List<Stile.Delivery>>;
    resend(id: string, params?: { endpoint?: string }, options?: Stile.RequestOptions): Promise<Record<string, unknown>>;
  };

  eventTypes: {
    create(params: Stile.EventTypeCreateParams, options?: Stile.RequestOptions): Promise<Stile.EventType>;
    retrieve(name: string, options?: Stile.RequestOptions): Promise<Stile.EventType>;
    update(name: string, params: Stile.EventTypeUpdateParams, options?: Stile.RequestOptions): Promise<Stile.EventType>;
    archive(name: string, options?: Stile.RequestOptions): Promise<Stile.EventType>;
    list(params?: { include_archived?: boolean }, options?: Stile.RequestOptions): Promise<Stile.List<Stile.EventType>>;
  };

  verificationSessions: {
    create(params?: Stile.VerificationSessionCreateParams, options?: Stile.RequestOptions): Promise<Stile.VerificationSession>;
    retrieve(id: string, options?: Stile.RequestOptions): Promise<Stile.VerificationSession>;
    list(params?: Stile.PageParams & Record<string, unknown>, options?: Stile.RequestOptions): Stile.ListRequest<Stile.VerificationSession>;
    cancel(id: string, options?: Stile.RequestOptions): Promise<Stile.VerificationSession>;
  };

  testHelpers: {
    verificationSessions: {
      process(id: string, options?: Stile.RequestOptions): Promise<Stile.VerificationSession>;
      requireInput(id: string, options?: Stile.RequestOptions): Promise<Stile.VerificationSession>;
      verify(id: string, options?: Stile.RequestOptions): Promise<Stile.VerificationSession>;
      fail(id: string, options?: Stile.RequestOptions): Promise<Stile.VerificationSession>;
      expire(id: string, options?: Stile.RequestOptions): Promise<Stile.VerificationSession>;
    };
  };

  apps: {
    create(params: Stile.ApplicationCreateParams, options?: Stile.RequestOptions): Promise<Stile.Application>;
    retrieve(id: string, options?: Stile.RequestOptions): Promise<Stile.Application>;
    update(id: string, params: Partial<Stile.ApplicationCreateParams>, options?: Stile.RequestOptions): Promise<Stile.Application>;
    del(id: string, options?: Stile.RequestOptions): Promise<Stile.DeletedObject>;
    list(params?: Stile.PageParams, options?: Stile.RequestOptions): Stile.ListRequest<Stile.Application>;
    createPortalSession(
      id: string,
      params?: { expires_in?: string; read_only?: boolean },
      options?: Stile.RequestOptions,
    ): Promise<Stile.PortalSession>;
  };

  webhooks: Stile.Webhooks;

  static Stile: typeof Stile;
  static default: typeof Stile;
}


declare namespace Stile {
  /** Options of `new Stile(apiKey, options)`. */
  interface StileOptions {
    /** The key, when the first argument is the options (default: `STILE_API_KEY`). */
    apiKey?: string;
    /** The server (default: `STILE_API_BASE`, else `http://127.0.0.1:8787`). */
    baseURL?: string;
    /** Per-request timeout in ms (default 30,000). */
    timeout?: number;
    /** Retries on network errors, 429 and 5xx (default 2). */
    maxRetries?: number;
    /** The application (id or uid) requests act on (`Stile-App`); default: the key's. */
    app?: string;
    /** A fetch implementation (default: the global one). */
    fetch?: typeof fetch;
  }

  /** Per-request options, the last argument of every method. */
  interface RequestOptions {
    idempotencyKey?: string;
    app?: string;
    timeout?: number;
    maxRetries?: number;
  }

  /** A page of a list. */
  interface List<T> {
    object: 'list';
    data: T[];
    has_more: boolean;
    url: string;
  }

  /** Awaited: one page. Iterated with `for await`: every item of every page. */
  interface ListRequest<T> extends PromiseLike<List<T>>, AsyncIterable<T> {
    catch<R = never>(onRejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<List<T> | R>;
    finally(onFinally?: (() => void) | null): Promise<List<T>>;
  }

  interface PageParams {
    limit?: number;
    starting_after?: string;
    ending_before?: string;
  }

  type Metadata = Record<string, string>;

  interface WebhookEndpoint {
    id: string;
    object: 'webhook_endpoint';
    url: string;
    kind: 'webhook' | 'listener';
    enabled_events: string[];
    name: string | null;
    labels: string[];
    description: string | null;
    metadata: Metadata;
    status: 'enabled' | 'disabled';
    disabled_reason: string | null;
    health: 'healthy' | 'degraded';
    failing_since: number | null;
    undelivered_payload_retention_hours: number | null;
    livemode: boolean;
    created: number;
  }

  /** The create answer: the endpoint and its signing secret, shown this once. */
  interface WebhookEndpointWithSecret extends WebhookEndpoint {
    secret: string;
  }

  interface WebhookEndpointCreateParams {
    url: string;
    enabled_events: string[];
    name?: string;
    labels?: string[];
    description?: string;
    metadata?: Metadata;
    undelivered_payload_retention_hours?: number;
  }

  interface WebhookEndpointUpdateParams {
    url?: string;
    enabled_events?: string[];
    name?: string | null;
    labels?: string[];
    description?: string | null;
    metadata?: Metadata | null;
    status?: 'enabled' | 'disabled';
    undelivered_payload_retention_hours?: number;
  }

  interface WebhookEndpointListParams extends PageParams {
    label?: string;
  }

  /** The answer of `webhookEndpoints.recover`. */
  interface Recovery {
    object: 'webhook_endpoint_recovery';
    endpoint_id: string;
    since: number;
    dry_run: boolean;
    events: number;
    has_more: boolean;
    expired: number;
  }

  interface DeletedObject {
    id: string;
    object: string;
    deleted: true;
  }

  interface Delivery {
    id: string;
    object: 'webhook_delivery';
    endpoint_id: string;
    event_id: string;
    event_type: string;
    attempt: number;
    status: 'pending' | 'succeeded' | 'retrying' | 'failed';
    response_status: number | null;
    response_body: string | null;
    error: string | null;
    duration_ms: number | null;
    next_retry_at: number | null;
    created: number;
    [field: string]: unknown;
  }

  interface DeliveryListParams extends PageParams {
    status?: 'pending' | 'succeeded' | 'retrying' | 'failed';
  }

  interface Event<Data = Record<string, unknown>> {
    id: string;
    object: 'event';
    type: string;
    livemode: boolean;
    created: number;
    data: Data;
    pending_webhooks?: number;
  }

  interface EventCreateParams {
    type: string;
    data?: Record<string, unknown>;
  }

  interface EventListParams extends PageParams {
    type?: string;
    created_after?: number;
    created_before?: number;
    session_id?: string;
    delivery_success?: boolean;
  }

  interface EventType {
    object: 'event_type';
    name: string;
    description: string;
    schema: Record<string, unknown> | null;
    example: Record<string, unknown> | null;
    source: 'built_in' | 'config' | 'api';
    built_in: boolean;
    alias_of: string | null;
    archived: boolean;
    created: number | null;
    updated: number | null;
  }

  interface EventTypeCreateParams {
    name: string;
    description?: string;
    schema?: Record<string, unknown>;
    example?: Record<string, unknown>;
  }

  interface EventTypeUpdateParams {
    description?: string;
    schema?: Record<string, unknown> | null;
    example?: Record<string, unknown> | null;
    archived?: boolean;
  }

  interface VerificationSession {
    id: string;
    object: 'verification_session';
    type: string;
    status: 'requires_input' | 'processing' | 'verified' | 'failed' | 'cancelled' | 'expired';
    client_reference_id: string | null;
    livemode: boolean;
    created: number;
    expires_at: number;
    completed_at: number | null;
    [field: string]: unknown;
  }

  interface VerificationSessionCreateParams {
    type?: 'document' | 'identity';
    client_reference_id?: string;
    metadata?: Metadata;
    [field: string]: unknown;
  }

  interface Application {
    id: string;
    object: 'application';
    name: string;
    uid: string | null;
    metadata: Metadata;
    default: boolean;
    livemode: boolean;
    created: number;
    branding: { display_name?: string | null; logo_url?: string | null; accent_color?: string | null };
  }

  interface ApplicationCreateParams {
    name: string;
    uid?: string;
    metadata?: Metadata;
    branding?: Application['branding'];
  }

  interface PortalSession {
    object: 'portal_session';
    id: string;
    url: string;
    token: string;
    expires_at: number;
    read_only: boolean;
  }

  interface ErrorFields {
    type?: string;
    code?: string;
    param?: string;
    statusCode?: number;
    requestId?: string;
    raw?: unknown;
    headers?: Record<string, string>;
  }

  /** An error answered by the Stile API (or met reaching it). */
  class StileError extends Error {
    constructor(message: string, fields?: ErrorFields);
    readonly type?: string;
    readonly code?: string;
    readonly param?: string;
    readonly statusCode?: number;
    readonly requestId?: string;
    readonly raw?: unknown;
    readonly headers?: Record<string, string>;
  }
  class StileInvalidRequestError extends StileError {}
  class StileAuthenticationError extends StileError {}
  class StilePermissionError extends StileError {}
  class StileIdempotencyError extends StileError {}
  class StileRateLimitError extends StileError {}
  class StileAPIError extends StileError {}
  class StileConnectionError extends StileError {}
  class StileSignatureVerificationError extends StileError {
    readonly header?: string;
    readonly payload?: string | Buffer;
  }

  /** Verifying the `stile-signature` of deliveries. */
  class Webhooks {
    constructEvent<Data = Record<string, any>>(
      payload: string | Buffer | Uint8Array,
      header: string | null | undefined,
      secret: string,
      toleranceSeconds?: number,
    ): Event<Data>;
    fromRequest<Data = Record<string, any>>(
      request: Request,
      secret: string,
      toleranceSeconds?: number,
    ): Promise<Event<Data>>;
    generateTestHeaderString(options: { payload: string; secret: string; timestamp?: number }): string;
  }
}


export = Stile;

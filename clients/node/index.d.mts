// Type declarations of @stile/node for ES modules: the same as the CommonJS ones.
import Stile from './index.js';

export default Stile;
export { Stile };

export type {
  StileOptions,
  RequestOptions,
  List,
  ListRequest,
  PageParams,
  Metadata,
  WebhookEndpoint,
  WebhookEndpointWithSecret,
  WebhookEndpointCreateParams,
  WebhookEndpointUpdateParams,
  WebhookEndpointListParams,
  DeletedObject,
  Recovery,
  Delivery,
  DeliveryListParams,
  Event,
  EventCreateParams,
  EventListParams,
  EventType,
  EventTypeCreateParams,
  EventTypeUpdateParams,
  VerificationSession,
  VerificationSessionCreateParams,
  Application,
  ApplicationCreateParams,
  PortalSession,
  ErrorFields,
} from './index.js';

export declare const Webhooks: typeof Stile.Webhooks;
export type Webhooks = Stile.Webhooks;
export declare const StileError: typeof Stile.StileError;
export type StileError = Stile.StileError;
export declare const StileInvalidRequestError: typeof Stile.StileInvalidRequestError;
export type StileInvalidRequestError = Stile.StileInvalidRequestError;
export declare const StileAuthenticationError: typeof Stile.StileAuthenticationError;
export type StileAuthenticationError = Stile.StileAuthenticationError;
export declare const StilePermissionError: typeof Stile.StilePermissionError;
export type StilePermissionError = Stile.StilePermissionError;
export declare const StileIdempotencyError: typeof Stile.StileIdempotencyError;
export type StileIdempotencyError = Stile.StileIdempotencyError;
export declare const StileRateLimitError: typeof Stile.StileRateLimitError;
export type StileRateLimitError = Stile.StileRateLimitError;
export declare const StileAPIError: typeof Stile.StileAPIError;
export type StileAPIError = Stile.StileAPIError;
export declare const StileConnectionError: typeof Stile.StileConnectionError;
export type StileConnectionError = Stile.StileConnectionError;
export declare const StileSignatureVerificationError: typeof Stile.StileSignatureVerificationError;
export type StileSignatureVerificationError = Stile.StileSignatureVerificationError;

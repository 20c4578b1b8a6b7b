// The ES module entry of @stile/node: the same implementation as the CommonJS entry.
import Stile from './index.cjs';

export default Stile;
export const {
  Webhooks,
  StileError,
  StileInvalidRequestError,
  StileAuthenticationError,
  StilePermissionError,
  StileIdempotencyError,
  StileRateLimitError,
  StileAPIError,
  StileConnectionError,
  StileSignatureVerificationError,
} = Stile;
export { Stile };

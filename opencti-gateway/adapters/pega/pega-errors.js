// Pega Call's error objects, made from the gateway's errors.
//
// A `failure` callback receives `{errCode, errMessage}`; Pega looks `errCode` up among its
// localized message rules and shows `errMessage` when it has none. The codes used here are
// from Pega's list of defaults (see README.md, "Sources").

/** Pega's default error codes that this implementation hands out. */
export const ERROR_CODES = Object.freeze({
  agentLoggedIn: "OPENCTI_AGENT_LOGGED_IN",
  agentNotLoggedIn: "OPENCTI_AGENT_NOT_LOGGED_IN",
  genericOperation: "OPENCTI_CF_GENERIC_OPERATION",
  invalidDestination: "OPENCTI_CF_INVALID_DESTINATION",
  invalidObjectState: "OPENCTI_CF_INVALID_OBJECT_STATE",
  inSameState: "OPENCTI_IN_SAME_STATE",
  unauthorized: "OPENCTI_HTTP_ERROR_401",
  unavailable: "OPENCTI_HTTP_ERROR_503",
  timedOut: "OPENCTI_HTTP_ERROR_504",
});

// The gateway's error kinds (`ErrorKind` in the protocol schema) by the nearest Pega code.
// A destination the gateway cannot read is a bad destination; a call or party it does
// not know is an object in the wrong state for Pega, which has no "not found".
const BY_KIND = {
  invalid_state: ERROR_CODES.invalidObjectState,
  not_found: ERROR_CODES.invalidObjectState,
  bad_input: ERROR_CODES.invalidDestination,
  unauthorized: ERROR_CODES.unauthorized,
  link_down: ERROR_CODES.unavailable,
  closed: ERROR_CODES.unavailable,
  timeout: ERROR_CODES.timedOut,
};

/** A Pega error object with this code and message (both always text). */
export function pegaError(errCode, errMessage) {
  return { errCode: String(errCode), errMessage: String(errMessage) };
}

/** The Pega error object for an error from the gateway client (an `OpenCtiError`) or
 * anything else thrown. */
export function fromGatewayError(error) {
  if (error && typeof error.errCode === "string") return error;
  const kind = error && typeof error.kind === "string" ? error.kind : "other";
  const message = error && error.message ? error.message : "the operation failed";
  return pegaError(BY_KIND[kind] || ERROR_CODES.genericOperation, message);
}

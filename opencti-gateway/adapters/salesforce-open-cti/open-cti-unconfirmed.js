// The details of Salesforce Open CTI (Lightning) that its published documentation does
// not settle, kept in this one file so that a check against a live org changes only it.
// Everything else the softphone does follows the documented method shapes.

/** The API version in the library's path. Any version from 38.0 has every method used
 * here; 67.0 is the one the reference was read at. */
export const API_VERSION = "67.0";

/**
 * Where to load `opencti_min.js` from. The documented location is
 * `<salesforce origin>/support/api/<version>/lightning/opencti_min.js`; which origin
 * serves it is not documented: hosted adapters take the Salesforce page that frames them
 * (`location.ancestorOrigins`, else `document.referrer`), and so does this. The adapter
 * URL may name the library instead, as `?opencti=<url>`; the page's Content-Security-Policy
 * still only runs scripts from the origins configured as the gateway's frame ancestors.
 * @returns {string|null} null when the page is not framed and names no library
 */
export function libraryUrl() {
  const named = new URLSearchParams(location.search).get("opencti");
  if (named) return named;
  let origin = null;
  if (location.ancestorOrigins && location.ancestorOrigins.length > 0) {
    origin = location.ancestorOrigins[0];
  } else if (document.referrer) {
    origin = new URL(document.referrer).origin;
  }
  return origin ? `${origin}/support/api/${API_VERSION}/lightning/opencti_min.js` : null;
}

/** The `callType` values for `searchAndScreenPop`, used only when the library does not
 * define `sforce.opencti.CALL_TYPE`: the documented enum's string values are not
 * published; Salesforce's own samples pass these lowercase literals. */
export const CALL_TYPE = { INBOUND: "inbound", OUTBOUND: "outbound" };

/** The number of a click-to-dial payload, as the gateway can dial it. The documentation
 * types it as a number; a record's phone field may hold spaces, dots, dashes and
 * parentheses, which are dropped here. */
export function dialable(number) {
  return String(number).replace(/[\s().-]/g, "");
}

// Salesforce's Open CTI library (`sforce.opencti`, Lightning) as promises: every method
// takes one object and answers a callback with {success, returnValue, errors}.

import { libraryUrl } from "./open-cti-unconfirmed.js";

/** A refusal from Salesforce, with its `errors` ([{code, description}]) as one text. */
export class OpenCtiRefusal extends Error {
  constructor(method, errors) {
    const list = Array.isArray(errors) ? errors : [];
    const text = list.map((e) => `${(e && e.code) || "ERROR"}: ${(e && e.description) || "no description"}`);
    super(`${method}: ${text.join("; ") || "refused with no reason given"}`);
    this.name = "OpenCtiRefusal";
    this.errors = list;
  }
}

/** Loads `opencti_min.js`; resolves with `sforce.opencti`. */
export function loadOpenCti() {
  const url = libraryUrl();
  if (!url) return Promise.reject(new Error("this page is not framed by Salesforce and names no Open CTI library"));
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.onload = () => {
      const api = window.sforce && window.sforce.opencti;
      if (api) resolve(api);
      else reject(new Error(`${url} did not define sforce.opencti`));
    };
    script.onerror = () => reject(new Error(`could not load ${url}`));
    document.head.append(script);
  });
}

/** Calls `sforce.opencti[method](args)`; resolves with the returnValue, or rejects with
 * an OpenCtiRefusal. */
export function call(api, method, args = {}) {
  return new Promise((resolve, reject) => {
    try {
      api[method]({
        ...args,
        callback: (response) => {
          if (response && response.success) resolve(response.returnValue);
          else reject(new OpenCtiRefusal(method, response && response.errors));
        },
      });
    } catch (error) {
      reject(new OpenCtiRefusal(method, [{ code: "GENERIC_ERROR", description: String(error) }]));
    }
  });
}

// A stand-in for Salesforce's opencti_min.js (Open CTI for Lightning), for the softphone's
// end-to-end test. It is written from the documented method shapes only: one object
// argument per method, an asynchronous callback with {success, returnValue, errors},
// listeners given as {listener}. Like the real library it talks to the Salesforce page
// that frames it, which records each call and answers (see lightning.html).
(() => {
  const salesforce = window.parent;
  const callbacks = new Map();
  const listeners = {};
  let nextId = 1;

  function send(method, args) {
    if (args === null || typeof args !== "object") {
      throw new TypeError(`sforce.opencti.${method} takes one object argument`);
    }
    const id = nextId++;
    // The record keeps what was passed, minus the callback every method takes.
    const recorded = {};
    for (const [key, value] of Object.entries(args)) {
      if (key === "callback") continue;
      recorded[key] = typeof value === "function" ? "<function>" : value;
    }
    if (typeof args.listener === "function") listeners[method] = args.listener;
    if (typeof args.callback === "function") callbacks.set(id, args.callback);
    salesforce.postMessage({ openCti: { id, method, args: recorded } }, "*");
  }

  window.addEventListener("message", (event) => {
    if (event.source !== salesforce || !event.data) return;
    const { answer, fire } = event.data;
    if (answer) {
      const callback = callbacks.get(answer.id);
      callbacks.delete(answer.id);
      if (callback) callback(answer.response);
    }
    if (fire && listeners[fire.method]) listeners[fire.method](fire.payload);
  });

  const methods = [
    "disableClickToDial", "enableClickToDial", "getAppViewInfo", "getCallCenterSettings",
    "getSoftphoneLayout", "isSoftphonePanelVisible", "notifyInitializationComplete",
    "onClickToDial", "onNavigationChange", "refreshView", "runApex", "saveLog", "screenPop",
    "searchAndScreenPop", "setSoftphoneItemIcon", "setSoftphoneItemLabel",
    "setSoftphonePanelHeight", "setSoftphonePanelIcon", "setSoftphonePanelLabel",
    "setSoftphonePanelVisibility", "setSoftphonePanelWidth", "subscribe", "publish",
    "unsubscribe",
  ];
  const opencti = {
    // The enums' string values are not published; these are the lowercase literals that
    // Salesforce's own samples pass.
    SCREENPOP_TYPE: {
      SOBJECT: "sobject", URL: "url", OBJECTHOME: "objecthome", LIST: "list",
      SEARCH: "search", NEW_RECORD_MODAL: "newRecord", FLOW: "flow",
    },
    CALL_TYPE: { INBOUND: "inbound", OUTBOUND: "outbound", INTERNAL: "internal" },
  };
  for (const method of methods) opencti[method] = (args) => send(method, args);
  window.sforce = { opencti };
})();

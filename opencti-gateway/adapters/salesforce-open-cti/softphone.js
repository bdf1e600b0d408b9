// The Salesforce Open CTI softphone: the panel's desk on an opencti gateway, inside
// Salesforce's softphone utility. Salesforce side, as the Open CTI guide's flow has it:
// click-to-dial places calls, an offered call opens the panel and pops the caller's
// record, and each call is logged as a Task once its wrap-up is done.

import { OpenCtiClient } from "../opencti-client.js";
import { attachDesk, showError } from "../panel-view.js";
import { requestToken } from "../sign-in-request.js";
import { call, loadOpenCti } from "./open-cti.js";
import { CALL_TYPE, dialable } from "./open-cti-unconfirmed.js";
import { taskFor } from "./call-log.js";

const $ = (selector) => document.querySelector(selector);

/** Call data keys for the record a click-to-dial call was placed from. */
const RECORD_ID = "salesforce.recordId";
const OBJECT_TYPE = "salesforce.objectType";

let api = null;
let client = null;
/** The record the agent has open in Salesforce ({recordId, objectType}). */
let openRecord = null;
/** Calls on the desk, by id: {id, direction, number, record, connectedAt, endedAt}. */
const calls = new Map();
/** Ended calls whose Task waits for the wrap-up to be done. */
let ended = [];
let inWrapUp = false;
let disposition = null;
let clickToDial = false;
/** Tasks Salesforce refused, kept to save again. */
let unsaved = [];

function status(text) {
  $("#salesforce-status").textContent = text;
}

function showUnsaved() {
  $("#unsaved").hidden = unsaved.length === 0;
  $("#unsaved-reason").textContent = unsaved.length
    ? `Salesforce did not save ${unsaved.length === 1 ? "the call log" : `${unsaved.length} call logs`}: ${unsaved[unsaved.length - 1].reason}`
    : "";
}

async function saveLog(value) {
  try {
    await call(api, "saveLog", { value });
  } catch (refusal) {
    unsaved.push({ value, reason: refusal.message });
    showUnsaved();
    return;
  }
  await call(api, "refreshView").catch((refusal) => status(refusal.message));
}

function saveEnded() {
  const now = new Date();
  const done = ended;
  ended = [];
  for (const entry of done) saveLog(taskFor(entry, openRecord, disposition, now));
}

function recordFromData(data) {
  return data && data[RECORD_ID] ? { recordId: data[RECORD_ID], objectType: data[OBJECT_TYPE] || "" } : null;
}

async function popCaller(entry) {
  if (!api) return;
  await call(api, "setSoftphonePanelVisibility", { visible: true }).catch((refusal) => status(refusal.message));
  if (!entry.number) return;
  const callType = (api.CALL_TYPE && api.CALL_TYPE.INBOUND) || CALL_TYPE.INBOUND;
  let matches;
  try {
    // Salesforce pops per the softphone layout: one match opens the record, several a
    // search page, none what the layout says (a new record, prefilled with the number).
    matches = await call(api, "searchAndScreenPop", {
      searchParams: entry.number,
      callType,
      defaultFieldValues: { Phone: entry.number },
      deferred: false,
    });
  } catch (refusal) {
    status(refusal.message);
    return;
  }
  const ids = Object.keys(matches || {}).filter((key) => key !== "SCREEN_POP_DATA");
  if (ids.length === 1) {
    const match = matches[ids[0]];
    entry.record = { recordId: match.Id || ids[0], objectType: match.RecordType || match.object || "" };
  }
  // With several or none, the call is linked to the record the agent opens.
}

function onEvent(event) {
  const known = calls.get(event.call);
  switch (event.type) {
    case "call_offered":
      if (known) return;
      calls.set(event.call, { id: event.call, direction: "inbound", number: event.from || null, record: recordFromData(event.data) });
      popCaller(calls.get(event.call));
      return;
    case "call_initiated":
      // A consultation leg belongs to the customer's call: it gets no log of its own.
      if (known || event.consult_of) return;
      calls.set(event.call, { id: event.call, direction: "outbound", number: event.to || null, record: recordFromData(event.data) });
      return;
    case "call_connected":
      if (known && !known.connectedAt) known.connectedAt = event.at;
      return;
    case "call_ended":
      if (!known) return;
      known.endedAt = event.at;
      calls.delete(event.call);
      ended.push(known);
      return;
    case "agent_state_changed":
      onAgentState(event.state);
      return;
    default:
  }
}

function onAgentState(state) {
  setClickToDial(state.state !== "logged_out");
  if (state.state === "wrap_up") {
    inWrapUp = true;
  } else if (["ready", "not_ready", "logged_out"].includes(state.state)) {
    if (!inWrapUp) disposition = null;
    saveEnded();
    inWrapUp = false;
    disposition = null;
  }
}

function setClickToDial(on) {
  // Before the library is loaded there is no one to tell; it is told once loaded.
  if (!api || on === clickToDial) return;
  clickToDial = on;
  call(api, on ? "enableClickToDial" : "disableClickToDial").catch((refusal) => status(refusal.message));
}

function onClickToDial(payload) {
  if (!client) {
    status("Sign in to place calls.");
    return;
  }
  if (!payload || payload.number === undefined || payload.number === null || payload.number === "") {
    status("Salesforce sent a click-to-dial with no number.");
    return;
  }
  const data = {};
  if (payload.recordId) data[RECORD_ID] = String(payload.recordId);
  if (payload.objectType) data[OBJECT_TYPE] = String(payload.objectType);
  client.command({ type: "make_call", to: dialable(payload.number), data }).catch(showError);
}

async function startDesk(token) {
  const wsUrl = new URL("../ws", location.href);
  wsUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  client = new OpenCtiClient(wsUrl.href, token);
  const desk = attachDesk(client, {
    onCommand: (command, outcome) => {
      if (command.type !== "complete_wrap_up") return;
      disposition = command.disposition || null;
      // Refused, the wrap-up goes on: its end (by a later command, or its timeout) must
      // not carry this disposition.
      outcome.catch(() => {
        if (disposition === command.disposition) disposition = null;
      });
    },
  });
  client.on("event", onEvent);
  client.on("snapshot", (snapshot) => setClickToDial(snapshot.agent_state.state !== "logged_out"));
  await client.connect();
  $("#sign-in").hidden = true;
  desk.open();
}

$("#sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#sign-in-error").textContent = "";
  try {
    const token = await requestToken(new URL("../api/sign-in", location.href), $("#sign-in-agent").value, $("#sign-in-password").value);
    await startDesk(token);
  } catch (error) {
    client = null;
    // Shown as text, never as markup.
    $("#sign-in-error").textContent = error.message;
  }
});

$("#unsaved-retry").onclick = () => {
  const again = unsaved;
  unsaved = [];
  showUnsaved();
  for (const { value } of again) saveLog(value);
};

try {
  api = await loadOpenCti();
  api.onClickToDial({ listener: onClickToDial });
  api.onNavigationChange({ listener: (page) => (openRecord = page && page.recordId ? page : null) });
  call(api, "getAppViewInfo")
    // A navigation reported meanwhile is newer than this answer.
    .then((page) => (openRecord = openRecord || (page && page.recordId ? page : null)))
    .catch((refusal) => status(refusal.message));
  await call(api, "notifyInitializationComplete");
  status("Connected to Salesforce.");
  if (client && client.snapshot) setClickToDial(client.snapshot.agent_state.state !== "logged_out");
} catch (error) {
  status(`Salesforce is not reachable: ${error.message}`);
}

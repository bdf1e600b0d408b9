// Salesforce's side of a Salesforce Voice connector, played against the connector in
// adapters/salesforce-voice running on the real @salesforce/scv-connector-base 3.6.2,
// over a gateway on the simulator. It posts SETUP_CONNECTOR with a MessagePort from a
// Lightning origin, as Salesforce does, then Salesforce's requests on that port, and
// checks every message the connector sends back. A second gateway client, the observer,
// checks that each request reached the switch. Milestones go to stdout so that the Rust
// test can make the simulated customers call and hang up.
//
//   node salesforce-voice.mjs <gateway http URL> <token> <extension>
//
// Needs a global WebSocket (Node 22, or Node 20 with --experimental-websocket).

import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [base, token, extension] = process.argv.slice(2);
const say = (line) => console.log(line);
const timeout = 15000;
const gatewayUrl = base.replace(/^http/, "ws") + "/ws";

// The library as the connector page has it: its UMD build, with a window to listen on.
globalThis.window = new EventTarget();
const require = createRequire(import.meta.url);
globalThis.SCVConnectorBase = require("@salesforce/scv-connector-base");
const version = require("@salesforce/scv-connector-base/package.json").version;
if (version !== "3.6.2") throw new Error(`scv-connector-base ${version}, not 3.6.2`);

// The connector's modules, as the gateway serves them to Salesforce's frame.
const dir = await mkdtemp(join(tmpdir(), "opencti-scv-"));
const files = ["connector.js", "scv-library.js", "scv-unconfirmed.js", "voice-call-records.js", "opencti-client.js", "connector-page.js"];
for (const name of files) {
  const response = await fetch(`${base}/salesforce-voice/${name}`);
  if (!response.ok) throw new Error(`GET /salesforce-voice/${name}: ${response.status}`);
  if (!response.headers.get("content-type").startsWith("text/javascript")) throw new Error(`${name} is not JavaScript`);
  if (response.headers.get("access-control-allow-origin") !== "*") throw new Error(`${name} has no CORS header`);
  await writeFile(join(dir, name), await response.text());
}
const page = await fetch(`${base}/salesforce-voice/connector.html`);
if (!page.ok || !(await page.text()).includes("connector-page.js")) throw new Error("no connector page");

const { OpenCtiVoiceConnector } = await import(pathToFileURL(join(dir, "connector.js")).href);
const { initializeConnector } = globalThis.SCVConnectorBase;

// Everything the connector sends Salesforce, in order.
const received = [];
let cursor = 0;
const channel = new MessageChannel();
channel.port1.onmessage = (message) => received.push(message.data);
const post = (message) => channel.port1.postMessage(message);

const describe = (m) => (m.type === "TELEPHONY_EVENT_DISPATCHED" ? `EVENT ${m.payload.telephonyEventType}` : m.type === "LOG" ? `LOG ${m.payload.eventType}` : m.type);
const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const expect = (what, ok) => {
  if (!ok) throw new Error(what);
};

// The next message after the last one waited for that matches (one name or a list); every message skipped on
// the way must be a LOG (the connector sends nothing else unasked).
const next = async (wanted, also = () => true) => {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    while (cursor < received.length) {
      const message = received[cursor++];
      if ([wanted].flat().includes(describe(message)) && also(message)) return message;
      if (message.type !== "LOG") throw new Error(`${describe(message)} ${JSON.stringify(message.payload)} while waiting for ${wanted}`);
    }
    await wait(20);
  }
  throw new Error(`no ${wanted}; last: ${received.slice(-5).map(describe).join(", ")}`);
};
const event = async (type, also) => (await next(`EVENT ${type}`, also)).payload.telephonyEventPayload;
// Nothing but logs arrives for a while.
const quiet = async (ms = 300) => {
  await wait(ms);
  for (; cursor < received.length; cursor++) {
    const message = received[cursor];
    if (message.type !== "LOG") throw new Error(`unexpected ${describe(message)} ${JSON.stringify(message.payload)}`);
  }
};

// The observer: the same agent's session, seen directly from the gateway.
const { OpenCtiClient } = await import(pathToFileURL(join(dir, "opencti-client.js")).href);
const observer = new OpenCtiClient(gatewayUrl, token, { reconnect: false });
const seen = [];
let seenCursor = 0;
observer.on("event", (e) => seen.push(e));
await observer.connect();
const gateway = async (type, also = () => true) => {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const index = seen.findIndex((e, i) => i >= seenCursor && e.type === type && also(e));
    if (index >= 0) {
      seenCursor = index + 1;
      return seen[index];
    }
    await wait(20);
  }
  throw new Error(`the gateway saw no ${type}; saw ${seen.slice(seenCursor).map((e) => e.type).join(", ")}`);
};
const agentState = (state, also = () => true) => gateway("agent_state_changed", (e) => e.state.state === state && also(e.state));

const checkCall = (call, callType, state, number) => {
  expect(`a ${callType} ${state} call with ${number}, not ${JSON.stringify(call)}`,
    call.callType === callType && call.state === state && call.phoneNumber === number && typeof call.callId === "string" &&
    call.callAttributes.participantType === "Initial_Caller");
};

try {
  // No token yet: Salesforce is asked to show the page's sign-in; a refused token is
  // reported as a failed login, the right one as a login and then the connector ready.
  const connector = new OpenCtiVoiceConnector({ gatewayUrl });
  initializeConnector(connector);
  window.dispatchEvent(new MessageEvent("message", {
    data: { type: "SETUP_CONNECTOR", connectorConfig: { "/reqGeneralInfo/reqAdapterUrl": `${base}/salesforce-voice/connector.html` } },
    origin: "https://acme.lightning.force.com",
    ports: [channel.port2],
  }));
  await next("LOG SETUP_CONNECTOR");
  expect("Salesforce shows the sign-in", (await event("SHOW_LOGIN")).loginFrameHeight > 0);
  await quiet();
  const refused = await connector.signIn("not-a-token").then(() => null, (error) => error);
  expect("a wrong token is refused", refused && refused.kind === "unauthorized");
  expect("the failed login is reported", (await event("LOGIN_RESULT")).success === false);
  await quiet();
  await connector.signIn(token);
  expect("the login is reported", (await event("LOGIN_RESULT")).success === true);
  const ready = (await next("CONNECTOR_READY")).payload;
  const caps = ready.capabilities || {};
  expect(`capabilities say no mute, record, merge or swap, blind transfer, a searchable phone book yes: ${JSON.stringify(caps)}`,
    caps.MUTE === false && caps.RECORD === false && caps.MERGE === false && caps.SWAP === false && caps.BLIND_TRANSFER === true && caps.PHONEBOOK === true && caps.CONTACT_SEARCH === true);
  expect(`the agent's phone is the desk phone ${extension}: ${JSON.stringify(ready.agentConfig)}`,
    ready.agentConfig.SELECTED_PHONE.type === "DESK_PHONE" && ready.agentConfig.SELECTED_PHONE.number === extension);
  expect("no call in progress", ready.callInProgress === null);

  // Omni-Channel online: the agent is ready on the switch.
  post({ type: "SET_AGENT_STATUS", agentStatus: "Online", statusInfo: { statusId: "0N5xx1", statusApiName: "Available", statusName: "Available" } });
  expect("the agent status was set", (await event("SET_AGENT_STATUS_RESULT")).success === true);
  await agentState("ready");
  say("READY");

  // An inbound call: offered, accepted, held, resumed, digits, a mute refused, the
  // phone book searched, ended by the agent; after-call work wrapped up.
  const offered = await event("CALL_STARTED");
  checkCall(offered, "Inbound", "ringing", "+441632960003");
  expect("no VoiceCall id without the server half", !offered.callAttributes.voiceCallId);
  const callId = offered.callId;
  post({ type: "ACCEPT_CALL", call: offered });
  checkCall(await event("CALL_CONNECTED"), "Inbound", "connected", "+441632960003");
  await gateway("call_connected", (e) => e.call === callId);
  await quiet();

  post({ type: "HOLD", call: offered });
  const held = await event("HOLD_TOGGLE");
  expect(`the customer is on hold: ${JSON.stringify(held)}`, held.isCustomerOnHold === true && held.isThirdPartyOnHold === false && held.calls[callId].callInfo.isOnHold === true);
  await gateway("call_held", (e) => e.call === callId);
  post({ type: "RESUME", call: offered });
  const resumed = await event("HOLD_TOGGLE");
  expect(`the customer is back: ${JSON.stringify(resumed)}`, resumed.isCustomerOnHold === false && resumed.calls[callId].callInfo.isOnHold === false);
  await gateway("call_retrieved", (e) => e.call === callId);
  await quiet();

  post({ type: "SEND_DIGITS", digits: "12#" });
  await gateway("dtmf_sent", (e) => e.call === callId && e.digits === "12#");
  await quiet();

  post({ type: "MUTE" });
  expect("a mute is refused as an error", (await next("EVENT ERROR")).payload.telephonyEventPayload !== undefined);
  await next("LOG MUTE", (m) => m.payload.isError === true);
  post({ type: "UNMUTE" });
  await next("EVENT ERROR");
  await next("LOG UNMUTE", (m) => m.payload.isError === true);

  // The phone book, from the gateway's CRM (the test seeds the demo's six contacts).
  post({ type: "GET_PHONE_CONTACTS", filter: { contains: "turing", limit: 50, offset: 0, types: [] } });
  const found = await event("PHONE_CONTACTS");
  expect(`one contact for "turing": ${JSON.stringify(found)}`, found.contacts.length === 1);
  const turing = found.contacts[0];
  expect(
    `Alan Turing as a phone-book contact: ${JSON.stringify(turing)}`,
    turing.name === "Alan Turing" && turing.phoneNumber === "+441632960004" && turing.id === "+441632960004" && turing.type === "PhoneBook" && turing.description === "Bletchley Systems",
  );
  expect(`the contact types: ${JSON.stringify(found.contactTypes)}`, JSON.stringify(found.contactTypes) === '["PhoneBook"]');
  post({ type: "GET_PHONE_CONTACTS", filter: { contains: "", limit: 50, offset: 0, types: [] } });
  const everyone = await event("PHONE_CONTACTS");
  expect(`the whole phone book: ${JSON.stringify(everyone)}`, everyone.contacts.length === 6);
  post({ type: "GET_PHONE_CONTACTS", filter: { contains: "nobody by this name", limit: 50, offset: 0, types: [] } });
  expect("no contacts for an unknown name", (await event("PHONE_CONTACTS")).contacts.length === 0);

  post({ type: "END_CALL", call: offered, agentStatus: "AfterCallWork" });
  const hangup = await event("HANGUP");
  expect(`the call ended: ${JSON.stringify(hangup)}`, hangup.length === 1 && hangup[0].callId === callId && hangup[0].state === "ended");
  await gateway("call_ended", (e) => e.call === callId);
  await agentState("wrap_up");
  post({ type: "WRAP_UP_CALL", call: offered });
  await agentState("ready");
  await quiet();

  // A second inbound call declined: the queue offers the caller again, who is answered
  // this time and hangs up.
  say("DECLINE");
  const declined = await event("CALL_STARTED");
  checkCall(declined, "Inbound", "ringing", "+441632960001");
  post({ type: "DECLINE_CALL", call: declined });
  let again = null;
  let hungUp = false;
  while (!again || !hungUp) {
    const message = (await next(["EVENT CALL_STARTED", "EVENT HANGUP"])).payload;
    if (message.telephonyEventType === "HANGUP") {
      expect("the declined call hung up", !hungUp && message.telephonyEventPayload.callId === declined.callId);
      hungUp = true;
    } else {
      expect("one new offer", !again);
      again = message.telephonyEventPayload;
    }
  }
  await gateway("call_ended", (e) => e.call === declined.callId);
  checkCall(again, "Inbound", "ringing", "+441632960001");
  expect("a new call", again.callId !== declined.callId);
  post({ type: "ACCEPT_CALL", call: again });
  await event("CALL_CONNECTED");
  const gone = await event("HANGUP");
  expect(`the caller's hangup reached Salesforce: ${JSON.stringify(gone)}`, gone.length === 1 && gone[0].callId === again.callId);
  await agentState("wrap_up");
  post({ type: "WRAP_UP_CALL", call: again });
  await agentState("ready");

  // An outbound call: dialled, answered by the far end, a participant consulted who
  // answers and then hangs up, the customer resumed, digits, ended by the far end.
  post({ type: "SET_AGENT_STATUS", agentStatus: "Offline", statusInfo: { statusId: "0N5xx2", statusApiName: "Outbound_Calls", statusName: "Outbound calls" } });
  expect("not ready for outbound calls", (await event("SET_AGENT_STATUS_RESULT")).success === true);
  await agentState("not_ready", (s) => s.reason === "Outbound_Calls");
  await quiet();
  post({ type: "DIAL", contact: { phoneNumber: " " } });
  await event("CALL_FAILED");
  await next("EVENT ERROR", (m) => m.payload.telephonyEventPayload.message === "INVALID_DESTINATION");
  post({ type: "DIAL", contact: { phoneNumber: "19\n00" } });
  await event("CALL_FAILED");
  await next("EVENT ERROR");
  await next("LOG DIAL", (m) => m.payload.isError === true);
  await quiet();
  post({ type: "DIAL", contact: { phoneNumber: "1900" } });
  const dialled = await event("CALL_STARTED");
  checkCall(dialled, "Outbound", "ringing", "1900");
  const connected = await event("CALL_CONNECTED");
  checkCall(connected, "Outbound", "connected", "1900");
  expect("the same call", connected.callId === dialled.callId);
  post({ type: "ACCEPT_CALL", call: connected });
  await quiet();

  post({ type: "ADD_PARTICIPANT", contact: { phoneNumber: "1901" }, call: connected, isBlindTransfer: false });
  const added = await event("PARTICIPANT_ADDED");
  expect(`1901 added: ${JSON.stringify(added)}`, added.phoneNumber === "1901" && added.initialCallHasEnded === false && added.callId !== dialled.callId);
  await gateway("call_held", (e) => e.call === dialled.callId);
  const joined = await event("PARTICIPANT_CONNECTED");
  expect("the participant answered", joined.callId === added.callId && joined.phoneNumber === "1901");
  say(`PARTICIPANT HANGS UP ${added.callId}`);
  const removed = await event("PARTICIPANT_REMOVED");
  expect(`the participant left, the call goes on: ${JSON.stringify(removed)}`, removed && "reason" in removed);
  await quiet();

  post({ type: "RESUME", call: connected });
  expect("the customer is back", (await event("HOLD_TOGGLE")).isCustomerOnHold === false);
  await gateway("call_retrieved", (e) => e.call === dialled.callId);
  // Held and retrieved from another desktop of the agent's (as from the desk phone):
  // Salesforce is told.
  await observer.command({ type: "hold", call: dialled.callId });
  const deskHeld = await event("HOLD_TOGGLE");
  expect(`held elsewhere: ${JSON.stringify(deskHeld)}`, deskHeld.isCustomerOnHold === true && deskHeld.calls[dialled.callId].callAttributes.isOnHold === true);
  await observer.command({ type: "retrieve", call: dialled.callId });
  expect("retrieved elsewhere", (await event("HOLD_TOGGLE")).isCustomerOnHold === false);
  await quiet();
  // A consultation started there too: Salesforce sees the participant come and go.
  await observer.command({ type: "consult", call: dialled.callId, to: "1901" });
  expect("held for the consultation", (await event("HOLD_TOGGLE")).isCustomerOnHold === true);
  const other = await event("PARTICIPANT_ADDED");
  expect(`1901 consulted elsewhere: ${JSON.stringify(other)}`, other.phoneNumber === "1901" && other.initialCallHasEnded === false && other.callId !== dialled.callId);
  expect("1901 answered", (await event("PARTICIPANT_CONNECTED")).callId === other.callId);
  say(`PARTICIPANT HANGS UP ${other.callId}`);
  await event("PARTICIPANT_REMOVED");
  post({ type: "RESUME", call: connected });
  expect("the customer is back again", (await event("HOLD_TOGGLE")).isCustomerOnHold === false);
  await quiet();

  post({ type: "SEND_DIGITS", digits: "4" });
  await gateway("dtmf_sent", (e) => e.call === dialled.callId && e.digits === "4");
  await quiet();
  say(`FAR END HANGS UP ${dialled.callId}`);
  const ended = await event("HANGUP");
  expect(`the far end's hangup reached Salesforce: ${JSON.stringify(ended)}`, ended.length === 1 && ended[0].callId === dialled.callId);

  // Another outbound call, handed to 1901 in a blind transfer: the agent's call ends.
  post({ type: "DIAL", contact: { phoneNumber: "1900" } });
  const second = await event("CALL_STARTED");
  checkCall(second, "Outbound", "ringing", "1900");
  const secondUp = await event("CALL_CONNECTED");
  post({ type: "ADD_PARTICIPANT", contact: { phoneNumber: "1901" }, call: secondUp, isBlindTransfer: true });
  const handed = await event("PARTICIPANT_ADDED");
  expect(`handed to 1901: ${JSON.stringify(handed)}`, handed.phoneNumber === "1901" && handed.initialCallHasEnded === true && handed.callId === second.callId);
  expect("the agent's call ended", (await event("HANGUP")).callId === second.callId);
  await gateway("call_ended", (e) => e.call === second.callId);
  await quiet();

  // Lunch, then logout.
  post({ type: "SET_AGENT_STATUS", agentStatus: "Offline", statusInfo: { statusId: "0N5xx3", statusApiName: "Lunch", statusName: "Lunch" } });
  await event("SET_AGENT_STATUS_RESULT");
  await agentState("not_ready", (s) => s.reason === "Lunch");
  post({ type: "LOGOUT" });
  const logout = await event("LOGOUT_RESULT");
  expect(`logged out: ${JSON.stringify(logout)}`, logout.success === true);
  await agentState("logged_out");
  await quiet();

  const events = received.filter((m) => m.type === "TELEPHONY_EVENT_DISPATCHED").map((m) => m.payload.telephonyEventType);
  say(`MESSAGES ${received.length} EVENTS ${events.length} ${[...new Set(events)].sort().join(",")}`);
  say("DONE");
} catch (error) {
  console.error("FAILED:", error.message);
  console.error("received:", received.map(describe).join(", "));
  observer.close();
  await rm(dir, { recursive: true, force: true });
  process.exit(1);
}
observer.close();
await rm(dir, { recursive: true, force: true });
process.exit(0);

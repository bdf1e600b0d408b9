// A stub Pega desktop, written from Pega's documented Desktop Interface, driving the
// Pega Call Desktop Implementation (adapters/pega) against a gateway on the simulator.
// Every event the implementation hands to Pega is checked against the JSON Schemas in
// adapters/pega/schemas, and every failure against Error.json. Milestones go to stdout
// so that the Rust test can make the simulated customers call.
//
//   node pega.mjs <gateway http URL> <token> <agent> <extension>
//
// Needs a global WebSocket (Node 22, or Node 20 with --experimental-websocket) and ajv.

import { mkdtemp, writeFile, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Ajv from "ajv";

const [base, token, agent, extension] = process.argv.slice(2);
const say = (line) => console.log(line);
const timeout = 15000;
const schemaDir = new URL("../adapters/pega/schemas/", import.meta.url);

// The schemas are draft-06, as Pega publishes them.
const require = createRequire(import.meta.url);
const ajv = new Ajv({ strict: true, allErrors: true });
ajv.addMetaSchema(require("ajv/dist/refs/json-schema-draft-06.json"));
const schema = async (name) => ajv.compile(JSON.parse(await readFile(new URL(`${name}.json`, schemaDir), "utf8")));
const validators = {
  CallStateEvent: await schema("CallEvent"),
  AgentStateEvent: await schema("AgentEvent"),
  PartyInfoEvent: await schema("PartyInfoEvent"),
  SnapshotEvent: await schema("Snapshot"),
};
const validError = await schema("Error");

// Problems found outside the scripted steps (an event that does not validate); the run
// fails if there is any.
const problems = [];
const check = (validate, value, what) => {
  if (!validate(value)) {
    problems.push(`${what} does not validate: ${JSON.stringify(value)}: ${ajv.errorsText(validate.errors)}`);
  }
};

// The implementation's files, as the gateway serves them to a Pega desktop of another
// origin: modules, with CORS.
const dir = await mkdtemp(join(tmpdir(), "opencti-pega-"));
for (const name of ["pega-interface.js", "pega-desktop.js", "pega-events.js", "pega-errors.js", "opencti-client.js"]) {
  const response = await fetch(`${base}/pega/${name}`);
  if (!response.ok) throw new Error(`GET /pega/${name}: ${response.status}`);
  if (!response.headers.get("content-type").startsWith("text/javascript")) throw new Error(`/pega/${name} is not JavaScript`);
  if (response.headers.get("access-control-allow-origin") !== "*") throw new Error(`/pega/${name} has no CORS header`);
  await writeFile(join(dir, name), await response.text());
}
const { installPegaDesktop } = await import(pathToFileURL(join(dir, "pega-interface.js")).href);

// The Pega side: the functions are installed on this object, as on a desktop's globals.
const pega = {};
installPegaDesktop({ gatewayUrl: base.replace(/^http/, "ws") + "/ws" }, pega);

const events = [];
let cursor = 0;
const forwardEvent = (event) => {
  const validate = validators[event && event.pyEventType];
  if (!validate) problems.push(`an event of no known type: ${JSON.stringify(event)}`);
  else check(validate, event, event.pyEventType);
  if (event && event.pyEventType === "SnapshotEvent") {
    for (const call of event.pyCalls || []) check(validators.CallStateEvent, call, "a snapshot's call");
  }
  events.push(event);
};

// Waits for the next event (after the last one waited for) with these properties, and
// passing `also` if given.
const next = async (wanted, also = () => true) => {
  const matches = (event) => Object.entries(wanted).every(([key, value]) => event[key] === value) && also(event);
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const index = events.findIndex((event, i) => i >= cursor && matches(event));
    if (index >= 0) {
      cursor = index + 1;
      return events[index];
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no event ${JSON.stringify(wanted)} after ${JSON.stringify(events.slice(cursor))}`);
};

// Calls a Desktop Interface function the way Pega does: its arguments, then options,
// success and failure.
const succeeds = (name, ...args) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`${name} settled neither way`)), timeout);
  pega[name](...args, {}, (...data) => { clearTimeout(timer); resolve(data); }, (error) => {
    clearTimeout(timer);
    reject(new Error(`${name} failed: ${JSON.stringify(error)}`));
  });
});
const fails = (code, name, ...args) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`${name} settled neither way`)), timeout);
  pega[name](...args, {}, () => { clearTimeout(timer); reject(new Error(`${name} succeeded`)); }, (error) => {
    clearTimeout(timer);
    check(validError, error, `${name}'s error`);
    if (error.errCode !== code) reject(new Error(`${name} failed with ${JSON.stringify(error)}, not ${code}`));
    else resolve(error);
  });
});
const login = (password, extensionNumber, agentId = agent) => new Promise((resolve, reject) => {
  pega.login(agentId, password, extensionNumber, {}, {}, resolve, reject, forwardEvent);
});
const expect = (what, ok) => {
  if (!ok) throw new Error(what);
};

try {
  // Nothing works before login; a wrong token is refused as Pega's 401.
  await fails("OPENCTI_AGENT_NOT_LOGGED_IN", "makeCall", "1900");
  const refused = await login("not-a-token", extension).then(() => null, (error) => error);
  expect(`a wrong token is refused as OPENCTI_HTTP_ERROR_401, not ${JSON.stringify(refused)}`,
    refused && refused.errCode === "OPENCTI_HTTP_ERROR_401");
  check(validError, refused, "login's error");
  // The token names the agent and extension: Pega's must be the same.
  for (const [otherAgent, otherExtension] of [["bob", extension], [agent, "1002"]]) {
    const mismatch = await login(token, otherExtension, otherAgent).then(() => null, (error) => error);
    expect(`${otherAgent} at ${otherExtension} is refused as OPENCTI_HTTP_ERROR_401, not ${JSON.stringify(mismatch)}`,
      mismatch && mismatch.errCode === "OPENCTI_HTTP_ERROR_401");
  }
  expect("no event before a successful login", events.length === 0);

  await login(token, extension);
  await next({ pyEventType: "AgentStateEvent", pyEventName: "NotReady", pyWorkMode: "AUX_WORK" });
  const snapshot = await next({ pyEventType: "SnapshotEvent", pyAgentState: "NotReady" });
  expect("the snapshot names the agent, an open device and a connected link",
    snapshot.pyAgentId === agent && snapshot.pyDeviceState === "OPENED" && snapshot.pyLinkState === "CONNECTED");
  await fails("OPENCTI_AGENT_LOGGED_IN", "login", agent, token, extension, {});

  await succeeds("agentReady", agent, "MODE_AUTO_IN", {});
  await next({ pyEventType: "AgentStateEvent", pyEventName: "Ready", pyWorkMode: "MODE_AUTO_IN" });
  await fails("OPENCTI_IN_SAME_STATE", "agentReady", agent, "MODE_AUTO_IN", {});
  say("READY");

  // An inbound call: answered, held, retrieved, DTMF, then a blind transfer.
  const first = await next({ pyEventName: "Alerting", pyCallType: "INBOUND", pyANI: "+441632960003" });
  expect("the caller is the other party", first.pyOtherDN === "+441632960003");
  await fails("OPENCTI_CF_INVALID_OBJECT_STATE", "holdCall", first.pyCallId);
  await succeeds("answerCall", first.pyCallId);
  await next({ pyEventName: "Established", pyCallId: first.pyCallId });
  await succeeds("holdCall", first.pyCallId);
  await next({ pyEventName: "Held", pyCallId: first.pyCallId });
  await succeeds("retrieveCall", first.pyCallId);
  await next({ pyEventName: "Retrieved", pyCallId: first.pyCallId });
  await succeeds("sendDTMF", first.pyCallId, "12#");
  await fails("OPENCTI_CF_INVALID_DESTINATION", "blindTransfer", first.pyCallId, " ");
  await succeeds("blindTransfer", first.pyCallId, "1900");
  await next({ pyEventName: "Disconnected", pyCallId: first.pyCallId });
  say("NEXT");

  // A second inbound call, transferred after consulting 1900.
  const second = await next({ pyEventName: "Alerting", pyCallType: "INBOUND", pyANI: "+441632960001" });
  await succeeds("answerCall", second.pyCallId);
  await next({ pyEventName: "Established", pyCallId: second.pyCallId });
  await succeeds("transferInitiate", second.pyCallId, "1900");
  const consult = await next({ pyEventName: "Initiated", pyCallType: "CONSULT", pyOtherDN: "1900" });
  await next({ pyEventName: "Established", pyCallId: consult.pyCallId });
  expect("the consulted call was held", events.some((event) => event.pyEventName === "Held" && event.pyCallId === second.pyCallId));
  await succeeds("transferComplete", second.pyCallId, consult.pyCallId);
  const ends = [];
  for (let i = 0; i < 2; i++) ends.push((await next({ pyEventName: "Disconnected" })).pyCallId);
  expect(`both calls ended, not only ${ends}`, ends.includes(second.pyCallId) && ends.includes(consult.pyCallId));

  // A caller who gives up while the call rings abandons it.
  say("ABANDON");
  const abandoned = await next({ pyEventName: "Alerting", pyANI: "+441632960002" });
  await next({ pyEventName: "Abandoned", pyCallId: abandoned.pyCallId });

  // An outbound call, made a conference with 1901, who is then dropped; hung up.
  await fails("OPENCTI_CF_INVALID_DESTINATION", "makeCall", "");
  await succeeds("makeCall", "1900");
  const outbound = await next({ pyEventName: "Initiated", pyCallType: "OUTBOUND", pyOtherDN: "1900", pyANI: extension });
  await next({ pyEventName: "Established", pyCallId: outbound.pyCallId });
  await succeeds("conferenceInitiate", outbound.pyCallId, "1901");
  await next({ pyEventName: "Held", pyCallId: outbound.pyCallId });
  const third = await next({ pyEventName: "Initiated", pyCallType: "CONSULT", pyOtherDN: "1901" });
  await next({ pyEventName: "Established", pyCallId: third.pyCallId });
  await succeeds("conferenceComplete", outbound.pyCallId, third.pyCallId);
  await next({ pyEventName: "Retrieved", pyCallId: outbound.pyCallId });
  const dns = (event) => event.pyParties.map((party) => party.pyDN).sort().join(" ");
  await next({ pyEventType: "PartyInfoEvent", pyCallId: outbound.pyCallId }, (event) => dns(event) === "1001 1900 1901");
  expect("the consultation call was merged", events.some((event) => event.pyEventName === "Disconnected" && event.pyCallId === third.pyCallId));
  await succeeds("dropParty", outbound.pyCallId, "1901");
  await next({ pyEventType: "PartyInfoEvent", pyCallId: outbound.pyCallId }, (event) => dns(event) === "1001 1900");
  await succeeds("hangUpCall", outbound.pyCallId);
  await next({ pyEventName: "Disconnected", pyCallId: outbound.pyCallId });

  // The link to the switch drops and comes back: Pega gets a snapshot each time, and
  // commands in between fail as the CTI server being unavailable.
  await next({ pyEventType: "AgentStateEvent", pyEventName: "Ready" });
  say("LINK DOWN");
  await next({ pyEventType: "SnapshotEvent", pyLinkState: "DISCONNECTED" });
  await fails("OPENCTI_HTTP_ERROR_503", "agentNotReady", agent, "AUX_WORK", "lunch", {});
  say("LINK UP");
  const back = await next({ pyEventType: "SnapshotEvent", pyLinkState: "CONNECTED" });
  expect("after the link is back the agent is ready with no calls",
    back.pyAgentState === "Ready" && back.pyDeviceState === "OPENED" && Array.isArray(back.pyCalls) && back.pyCalls.length === 0);
  const lost = events.filter((event) => event.pyEventType === "SnapshotEvent" && event.pyLinkState === "DISCONNECTED");
  expect(`one snapshot said the link was lost, not ${lost.length}`, lost.length === 1);

  // The connection to the gateway is cut: the link is lost for Pega too, until the
  // client has reconnected and Pega has the state again.
  say("CUT");
  await next({ pyEventType: "SnapshotEvent", pyLinkState: "DISCONNECTED" });
  const again = await next({ pyEventType: "SnapshotEvent", pyLinkState: "CONNECTED" });
  expect("after reconnecting the agent is still ready and logged in", again.pyAgentState === "Ready" && again.pyDeviceState === "OPENED");

  // Not ready for lunch, then logout at the end of the shift.
  await succeeds("agentNotReady", agent, "AUX_WORK", "lunch", {});
  await next({ pyEventType: "AgentStateEvent", pyEventName: "NotReady", pyReasonCode: "lunch" });
  await succeeds("logout", agent, "end-of-shift");
  await next({ pyEventType: "AgentStateEvent", pyEventName: "Logout", pyReasonCode: "end-of-shift" });
  const last = await next({ pyEventType: "SnapshotEvent", pyAgentState: "Logout" });
  expect("logout closes the device", last.pyDeviceState === "CLOSED" && last.pyReasonCode === "end-of-shift");
  await fails("OPENCTI_AGENT_NOT_LOGGED_IN", "holdCall", first.pyCallId);

  if (problems.length) throw new Error(problems.join("\n"));
  const kinds = new Set(events.map((event) => event.pyEventType));
  say(`EVENTS ${events.length} ${[...kinds].sort().join(",")}`);
  say("DONE");
} catch (error) {
  console.error("FAILED:", error.message);
  for (const problem of problems) console.error("problem:", problem);
  console.error("events:", JSON.stringify(events));
  await rm(dir, { recursive: true, force: true });
  process.exit(1);
}
await rm(dir, { recursive: true, force: true });
process.exit(0);

// Pega's side of the Desktop Implementation: everything here follows Pega's public
// documentation where it is explicit and makes an assumption where it is not. The
// assumptions are kept in this one file, each marked [U], and listed in README.md; the
// behaviour behind them (pega-desktop.js, pega-events.js, pega-errors.js) is independent
// of them.
//
//   import { installPegaDesktop } from "https://gateway.example/pega/pega-interface.js";
//   installPegaDesktop();   // defines login, logout, agentReady, ... as globals
//
// Confirmed [C]: the function names; the arguments of login, logout, agentNotReady and
// conferenceInitiate; that every function ends with options, success and failure; that
// login receives the event callback last and that a SnapshotEvent follows login and
// logout; failure's {errCode, errMessage}.

import { PegaDesktop } from "./pega-desktop.js";
import { fromGatewayError } from "./pega-errors.js";

/** [U] The SnapshotEvent properties after `pyReasonCode`, which the published schema page
 * cuts off: the agent's work mode and the calls on the device (as CallStateEvents, so
 * that Pega can rebuild its Call Control Panel after a reconnect). */
export function snapshotTail(events) {
  return { pyWorkMode: events.workMode(), pyCalls: events.currentCalls() };
}

/** [U] What is handed to `forwardEvent`: the event object itself (Pega's pages show the
 * events as JSON objects; whether the callback wants an object or a JSON string is not
 * said). */
function forwardPayload(event) {
  return event;
}

/** [U] The gateway's WebSocket address when Pega gives none: the gateway this module was
 * loaded from. */
function defaultGatewayUrl() {
  const url = new URL("../ws", import.meta.url);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  else return "";
  return url.href;
}

/**
 * [U] Registration: defines Pega's Desktop Interface functions on `target` (by default
 * the page's global object, as when the functions of `pega_cti_desktopAPI.js` are copied
 * into an implementation file) and returns them.
 *
 * @param {object} [settings]
 * @param {string} [settings.gatewayUrl]  the gateway's WebSocket address, e.g.
 *   "wss://gateway.example/ws"; `options.gatewayUrl` given to login wins over it
 * @param {object} [target=globalThis]
 */
export function installPegaDesktop(settings = {}, target = globalThis) {
  const desktop = new PegaDesktop({ snapshotTail });
  const functions = {
    // [C] login(agentID, agentPwd, extension, linkDefinition, options, success, failure,
    // forwardEvent). [U] agentPwd carries the agent's gateway token (issued by the
    // integrator's sign-on, as for the Call Control Panel); linkDefinition is not used.
    login(agentID, agentPwd, extension, linkDefinition, options, success, failure, forwardEvent) {
      const gatewayUrl = (options && options.gatewayUrl) || settings.gatewayUrl || defaultGatewayUrl();
      const forward = typeof forwardEvent === "function" ? (event) => forwardEvent(forwardPayload(event)) : null;
      settle(
        () => desktop.login({ agent: agentID, device: extension, token: agentPwd, gatewayUrl, forward }),
        success,
        failure,
      );
    },
    // [C] logout(agentID, reasonCode, options, success, failure)
    logout(agentID, reasonCode, options, success, failure) {
      settle(() => desktop.logout({ reason: reasonCode }), success, failure);
    },
    // [U] agentReady(agentID, workMode, linkDefinition, options, success, failure): the
    // order of agentNotReady without its reason code.
    agentReady(agentID, workMode, linkDefinition, options, success, failure) {
      settle(() => desktop.ready(), success, failure);
    },
    // [C] agentNotReady(agentID, workMode, reasonCode, linkDefinition, options, success,
    // failure)
    agentNotReady(agentID, workMode, reasonCode, linkDefinition, options, success, failure) {
      settle(() => desktop.notReady({ reason: reasonCode }), success, failure);
    },
    // [U] for the functions below, the documented key parameters come first, then
    // options, success and failure.
    makeCall(destination, options, success, failure) {
      settle(() => desktop.makeCall({ to: destination }), success, failure);
    },
    answerCall(callId, options, success, failure) {
      settle(() => desktop.answer({ call: callId }), success, failure);
    },
    hangUpCall(callId, options, success, failure) {
      settle(() => desktop.hangUp({ call: callId }), success, failure);
    },
    holdCall(callId, options, success, failure) {
      settle(() => desktop.hold({ call: callId }), success, failure);
    },
    retrieveCall(callId, options, success, failure) {
      settle(() => desktop.retrieve({ call: callId }), success, failure);
    },
    sendDTMF(callId, digits, options, success, failure) {
      settle(() => desktop.sendDigits({ call: callId, digits }), success, failure);
    },
    // [C] conferenceInitiate(callId, destination, options, success, failure)
    conferenceInitiate(callId, destination, options, success, failure) {
      settle(() => desktop.consult({ call: callId, to: destination }), success, failure);
    },
    consultationCall(callId, destination, options, success, failure) {
      settle(() => desktop.consult({ call: callId, to: destination }), success, failure);
    },
    conferenceComplete(heldCallId, activeCallId, options, success, failure) {
      settle(() => desktop.completeConference({ consultCall: activeCallId }), success, failure);
    },
    transferInitiate(callId, destination, options, success, failure) {
      settle(() => desktop.consult({ call: callId, to: destination }), success, failure);
    },
    transferComplete(heldCallId, activeCallId, options, success, failure) {
      settle(() => desktop.completeTransfer({ consultCall: activeCallId }), success, failure);
    },
    blindTransfer(callId, destination, options, success, failure) {
      settle(() => desktop.blindTransfer({ call: callId, to: destination }), success, failure);
    },
    dropParty(callId, party, options, success, failure) {
      settle(() => desktop.dropParty({ call: callId, party }), success, failure);
    },
  };
  Object.assign(target, functions);
  return functions;
}

// Runs one operation and calls `success` with no data, or `failure` with the Pega error
// object. A callback that throws is reported, not turned into the other callback.
function settle(operation, success, failure) {
  new Promise((resolve) => resolve(operation())).then(
    () => callBack(success),
    (error) => callBack(failure, fromGatewayError(error)),
  );
}

function callBack(callback, ...values) {
  if (typeof callback !== "function") return;
  try {
    callback(...values);
  } catch (error) {
    console.error("a Pega callback failed", error);
  }
}

// The Pega Call Desktop Implementation's behaviour over the gateway, with plain named
// arguments: each operation sends one canonical command through `OpenCtiClient` and
// settles when the gateway confirms it, or fails with a Pega error object. Events go to
// the `forward` function given at login, translated by `PegaEvents`.
//
// How Pega calls in (function names, argument order, where the functions live) is in
// pega-interface.js, apart, because Pega's public documentation leaves part of it open.

import { OpenCtiClient } from "./opencti-client.js";
import { PegaEvents, text } from "./pega-events.js";
import { ERROR_CODES, fromGatewayError, pegaError } from "./pega-errors.js";

export class PegaDesktop {
  /**
   * @param {object} [settings]
   * @param {(events: PegaEvents) => object} [settings.snapshotTail]  properties added to
   *   every SnapshotEvent after the documented ones
   */
  constructor(settings = {}) {
    this.snapshotTail = settings.snapshotTail || (() => ({}));
    this.client = null;
    this.events = new PegaEvents();
    this.forward = null;
    // The device is monitored for the agent: from a successful login to logout.
    this.open = false;
  }

  /** Connects to the gateway with the agent's token, logs the agent in to the switch if
   * needed, and hands Pega a SnapshotEvent. Later events go to `forward`. */
  async login({ agent, device, token, gatewayUrl, forward }) {
    if (this.client) throw pegaError(ERROR_CODES.agentLoggedIn, "the agent is already logged in");
    if (typeof forward !== "function") {
      throw pegaError(ERROR_CODES.genericOperation, "login needs the event callback");
    }
    if (!gatewayUrl) throw pegaError(ERROR_CODES.genericOperation, "no gateway address");
    this.forward = forward;
    this.events = new PegaEvents();
    const client = new OpenCtiClient(text(gatewayUrl), text(token));
    client.on("snapshot", (snapshot) => this._onSnapshot(snapshot));
    client.on("event", (event) => this._onEvent(event));
    client.on("link", (state) => this._onLink(state));
    this.client = client;
    try {
      const snapshot = await client.connect();
      // The token decides the agent and device; Pega's must be the same ones.
      if (agent && text(agent) !== text(snapshot.agent)) {
        throw pegaError(ERROR_CODES.unauthorized, `the token is not agent ${text(agent)}'s`);
      }
      if (device && text(device) !== text(snapshot.device)) {
        throw pegaError(ERROR_CODES.unauthorized, `the token is not for extension ${text(device)}`);
      }
      this.open = true;
      if (snapshot.agent_state && snapshot.agent_state.state === "logged_out") {
        await client.command({ type: "login" });
      }
    } catch (error) {
      this._close();
      throw fromGatewayError(error);
    }
    this._forwardSnapshot();
  }

  /** Logs the agent out with an optional reason code, hands Pega a SnapshotEvent, and
   * closes the connection. */
  async logout({ reason }) {
    this._requireOpen();
    const code = text(reason);
    this.events.logoutReason = code;
    await this._send(code ? { type: "logout", reason: code } : { type: "logout" });
    this.open = false;
    this._forwardSnapshot();
    this._close();
  }

  /** Makes the agent Ready. */
  async ready() {
    this._requireOpen();
    if (this.events.agentState.state === "ready") {
      throw pegaError(ERROR_CODES.inSameState, "the agent is already ready");
    }
    await this._setState({ state: "ready" });
  }

  /** Makes the agent Not Ready, with an optional reason code. */
  async notReady({ reason }) {
    this._requireOpen();
    const code = text(reason);
    const now = this.events.agentState;
    if (now.state === "not_ready" && text(now.reason) === code) {
      throw pegaError(ERROR_CODES.inSameState, "the agent is already not ready for this reason");
    }
    await this._setState(code ? { state: "not_ready", reason: code } : { state: "not_ready" });
  }

  /** Calls `to`. Success carries no data: the call's progress comes as events. */
  async makeCall({ to }) {
    this._requireOpen();
    await this._send({ type: "make_call", to: this._destination(to) });
  }

  answer({ call }) {
    return this._onCall("answer", call);
  }

  hangUp({ call }) {
    return this._onCall("hangup", call);
  }

  hold({ call }) {
    return this._onCall("hold", call);
  }

  retrieve({ call }) {
    return this._onCall("retrieve", call);
  }

  sendDigits({ call, digits }) {
    return this._onCall("send_dtmf", call, { digits: text(digits) });
  }

  /** Holds `call` and calls `to` about it: the first step of a consultation transfer or
   * conference. */
  consult({ call, to }) {
    return this._onCall("consult", call, { to: this._destination(to) });
  }

  /** Transfers the held call to the party on the consultation call `consultCall`. */
  completeTransfer({ consultCall }) {
    return this._onCall("complete_transfer", consultCall);
  }

  /** Joins the held call and the consultation call `consultCall` in a conference. */
  completeConference({ consultCall }) {
    return this._onCall("complete_conference", consultCall);
  }

  blindTransfer({ call, to }) {
    return this._onCall("blind_transfer", call, { to: this._destination(to) });
  }

  /** Drops `party` (its number, as in PartyInfoEvent's `pyDN`, or the switch's party
   * id) from `call`. */
  dropParty({ call, party }) {
    const known = this.events.calls.get(text(call));
    let id = text(party);
    if (known) {
      for (const [partyId, details] of known.parties) {
        if (text(details.address) === id) id = partyId;
      }
    }
    return this._onCall("drop_party", call, { party: id });
  }

  async _onCall(type, call, fields = {}) {
    this._requireOpen();
    await this._send({ type, call: text(call), ...fields });
  }

  async _setState(state) {
    // A change asked for while a call rings or is up takes effect after it.
    const onCall = ["reserved", "busy"].includes(this.events.agentState.state);
    await this._send({ type: "set_agent_state", state, after_call: onCall });
  }

  async _send(command) {
    try {
      await this.client.command(command);
    } catch (error) {
      throw fromGatewayError(error);
    }
  }

  _destination(to) {
    const destination = text(to).trim();
    if (!destination) throw pegaError(ERROR_CODES.invalidDestination, "no destination");
    return destination;
  }

  _requireOpen() {
    if (!this.open || !this.client || this.events.agentState.state === "logged_out") {
      throw pegaError(ERROR_CODES.agentNotLoggedIn, "the agent is not logged in");
    }
  }

  _onSnapshot(snapshot) {
    this.events.resync(snapshot);
    // The first snapshot comes before login has finished; later ones follow a resync.
    if (this.open) this._forwardSnapshot();
  }

  _onEvent(event) {
    if (!this.open) return;
    for (const pegaEvent of this.events.translate(event)) this._forwardEvent(pegaEvent);
    if (event.type === "link_up") this._forwardSnapshot();
  }

  // The link is lost when the switch's link goes down (a `link_down` event) and also
  // when the connection to the gateway closes; either way Pega is told at once. It comes
  // back with a `link_up` event or a fresh snapshot.
  _onLink(state) {
    if (!this.open || state === "up" || this.events.link === "down") return;
    this.events.link = "down";
    this._forwardSnapshot();
  }

  _forwardSnapshot() {
    this._forwardEvent({ ...this.events.snapshot(this.open), ...this.snapshotTail(this.events) });
  }

  _forwardEvent(pegaEvent) {
    try {
      this.forward(pegaEvent);
    } catch (error) {
      console.error("Pega's event callback failed", error);
    }
  }

  _close() {
    this.open = false;
    if (this.client) this.client.close();
    this.client = null;
  }
}

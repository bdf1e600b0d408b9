// Canonical events (the gateway's `event` messages) into Pega Call events.
//
// Pure bookkeeping, no I/O: `PegaEvents` keeps what it has seen of the agent and the
// calls on the device, and turns each canonical event into the Pega events it means.
// Field names and values are the ones Pega documents (the schemas in `schemas/`); every
// value that came from a caller or the switch is copied as a string, never interpreted.

/** The media every event carries: this implementation handles voice only. */
export const MEDIA = "Phone";

// The work mode an agent state is reported with ("workmode for Ready or substate for
// NotReady"). Ready agents take calls from the queues as they come: auto-in.
const WORK_MODE = {
  logged_out: "MODE_NONE",
  not_ready: "AUX_WORK",
  ready: "MODE_AUTO_IN",
  wrap_up: "ACW",
};

// The AgentStateEvent name of each chosen or derived state. `reserved` and `busy` (a
// call is ringing or up) have no AgentStateEvent: the call events say it.
const AGENT_EVENT_NAME = {
  logged_out: "Logout",
  not_ready: "NotReady",
  ready: "Ready",
  wrap_up: "NotReady",
};

// The SnapshotEvent's `pyAgentState`, which does have Busy.
const SNAPSHOT_AGENT_STATE = {
  logged_out: "Logout",
  not_ready: "NotReady",
  ready: "Ready",
  reserved: "Busy",
  busy: "Busy",
  wrap_up: "NotReady",
};

// The CallStateEvent name a call in this canonical state was last reported with, for
// calls already up when a snapshot arrives.
const CALL_EVENT_NAME = {
  initiated: "Initiated",
  ringback: "Initiated",
  offered: "Alerting",
  queued: "Alerting",
  connected: "Established",
  held: "Held",
};

/** A value as Pega gets it: always a string, the empty one for none. */
export const text = (value) => (value === null || value === undefined ? "" : String(value));

export class PegaEvents {
  constructor() {
    this.agent = "";
    this.device = "";
    this.link = "down";
    this.agentState = { state: "logged_out" };
    /** The reason the agent logged out with, for the Logout event (the canonical state
     * does not carry it). */
    this.logoutReason = "";
    /** Calls on the device by id: direction, role, addresses, parties, last event name. */
    this.calls = new Map();
  }

  /** Starts again from a gateway snapshot (on connect and after every resync). */
  resync(snapshot) {
    this.agent = text(snapshot.agent);
    this.device = text(snapshot.device);
    this.link = snapshot.link === "up" ? "up" : "down";
    this.agentState = snapshot.agent_state || { state: "logged_out" };
    this.calls = new Map();
    for (const call of snapshot.calls || []) {
      if (call.state === "ended" || call.state === "failed") continue;
      const entry = this._add(call.id, call.direction, call);
      entry.role = call.role || "primary";
      entry.name = CALL_EVENT_NAME[call.state] || "Initiated";
      for (const party of call.parties || []) entry.parties.set(text(party.id), party);
    }
  }

  /** The Pega events one canonical event means, in order (often none). */
  translate(event) {
    switch (event.type) {
      case "link_up":
        this.link = "up";
        return [];
      case "link_down":
        this.link = "down";
        return [];
      case "agent_state_changed":
        return this._agentState(event.state);
      case "call_offered":
        return [this._callEvent(this._add(event.call, "inbound", event), "Alerting")];
      case "call_initiated": {
        const call = this._add(event.call, "outbound", event);
        if (event.consult_of) call.role = "consult";
        return [this._callEvent(call, "Initiated")];
      }
      case "call_connected":
        return this._known(event.call, (call) => [this._callEvent(call, "Established")]);
      case "call_held":
        return this._known(event.call, (call) => [this._callEvent(call, "Held")]);
      case "call_retrieved":
        return this._known(event.call, (call) => [this._callEvent(call, "Retrieved")]);
      case "call_conferenced":
        // The held call is live again, now with everyone on it.
        return this._known(event.call, (call) => {
          call.role = "conference";
          const retrieved = call.name === "Held" ? [this._callEvent(call, "Retrieved")] : [];
          return [...retrieved, this._partyInfo(call)];
        });
      case "party_joined":
        return this._known(event.call, (call) => {
          call.parties.set(text(event.party && event.party.id), event.party || {});
          return [this._partyInfo(call)];
        });
      case "party_left":
        return this._known(event.call, (call) => {
          call.parties.delete(text(event.party));
          return [this._partyInfo(call)];
        });
      case "call_failed":
      case "call_ended":
        // A caller who hangs up before the agent answers abandoned the call.
        return this._known(event.call, (call) => {
          this.calls.delete(call.id);
          const name = event.cause === "abandoned" && call.name === "Alerting" ? "Abandoned" : "Disconnected";
          return [this._callEvent(call, name)];
        });
      default:
        // Queued, ringback, transfers and diversions (a call_ended follows), call data,
        // flags, DTMF and asynchronous command failures have no Pega event of their own.
        return [];
    }
  }

  /** The SnapshotEvent's documented properties; `deviceOpen` says whether the device is
   * monitored (after login, until logout). */
  snapshot(deviceOpen) {
    const state = this.agentState.state;
    return {
      pyEventType: "SnapshotEvent",
      pyEventName: "Snapshot",
      pyAgentId: this.agent,
      pyAgentState: SNAPSHOT_AGENT_STATE[state] || "Unknown",
      pyDeviceState: deviceOpen ? "OPENED" : "CLOSED",
      pyLinkState: this.link === "up" ? "CONNECTED" : "DISCONNECTED",
      pyMedia: MEDIA,
      pyReasonCode: state === "logged_out" ? text(this.logoutReason) : text(this.agentState.reason),
    };
  }

  /** The work mode of the agent's current state. */
  workMode() {
    return WORK_MODE[this.agentState.state] || "BUSY";
  }

  /** The CallStateEvent of every call on the device, as last reported. */
  currentCalls() {
    return [...this.calls.values()].map((call) => this._callEvent(call, call.name));
  }

  _agentState(state) {
    this.agentState = state || { state: "logged_out" };
    const name = AGENT_EVENT_NAME[this.agentState.state];
    if (!name) return [];
    const reason = this.agentState.state === "logged_out" ? this.logoutReason : this.agentState.reason;
    return [
      {
        pyEventType: "AgentStateEvent",
        pyEventName: name,
        pyReasonCode: text(reason),
        pyWorkMode: WORK_MODE[this.agentState.state],
        pyMedia: MEDIA,
      },
    ];
  }

  _add(id, direction, fields) {
    const key = text(id);
    const known = this.calls.get(key);
    if (known) return known;
    const call = {
      id: key,
      direction: direction === "inbound" ? "inbound" : "outbound",
      role: "primary",
      from: text(fields.from),
      to: text(fields.to),
      parties: new Map(),
      name: "",
    };
    this.calls.set(key, call);
    return call;
  }

  _known(id, then) {
    const call = this.calls.get(text(id));
    return call ? then(call) : [];
  }

  _callEvent(call, name) {
    call.name = name;
    const inbound = call.direction === "inbound";
    return {
      pyEventType: "CallStateEvent",
      pyEventName: name,
      pyCallId: call.id,
      pyCallType: call.role === "consult" ? "CONSULT" : inbound ? "INBOUND" : "OUTBOUND",
      // The calling device, and the device at the other end from the agent's.
      pyANI: inbound ? call.from : this.device,
      pyOtherDN: inbound ? call.from : call.to,
      pyMedia: MEDIA,
    };
  }

  _partyInfo(call) {
    // Every party on the call: the agent's device first, then the others by number (or
    // by the switch's id for a party whose number is not known).
    const parties = [{ pyDN: this.device }];
    for (const [id, party] of call.parties) parties.push({ pyDN: text(party.address) || id });
    return {
      pyEventType: "PartyInfoEvent",
      pyEventName: "PartyInfo",
      pyCallId: call.id,
      pyThisDN: this.device,
      pyParties: parties,
      pyMedia: MEDIA,
    };
  }
}

// A Salesforce Voice (partner telephony) connector over the opencti gateway: a
// `VendorConnector` of `@salesforce/scv-connector-base` 3.6.2 whose phone is the gateway,
// reached through `OpenCtiClient`.
//
// Salesforce's requests (accept, hold, end, dial, agent status, ...) arrive through the
// base library, which calls the methods below and tells Salesforce the outcome from what
// they return. What happens on the phone side without Salesforce asking (a call offered,
// the far end answering or hanging up, a party joining or leaving, a hold from the desk
// phone) comes as gateway events, which become `publishEvent` calls. A gateway event
// that only confirms what Salesforce asked for is not published again.

import { OpenCtiClient } from "./opencti-client.js";
import {
  ActiveCallsResult,
  AgentConfigResult,
  CallInfo,
  CallResult,
  CapabilitiesResult,
  Constants,
  Contact,
  GenericResult,
  HangupResult,
  HoldToggleResult,
  InitResult,
  LogoutResult,
  ParticipantResult,
  Phone,
  PhoneCall,
  PhoneCallAttributes,
  PhoneContactsResult,
  VendorConnector,
  publishEvent,
} from "./scv-library.js";
import { CALL_CONTROLS, LOGIN_FRAME_HEIGHT, contactSearch, gatewayState } from "./scv-unconfirmed.js";
import { NoVoiceCallRecords } from "./voice-call-records.js";

const text = (value) => (value === undefined || value === null ? "" : String(value));

/** How long a dial or consultation waits for the gateway to report the new call. */
const NEW_CALL_TIMEOUT_MS = 10000;

export class OpenCtiVoiceConnector extends VendorConnector {
  /**
   * @param {object} settings
   * @param {string} settings.gatewayUrl  the gateway's WebSocket URL
   * @param {string} [settings.token]  the agent's gateway token, where the page already
   *   has one; otherwise Salesforce shows the page's sign-in and the page calls `signIn`
   * @param {import("./voice-call-records.js").VoiceCallRecords} [settings.records]
   *   where VoiceCall records come from (default: none are made)
   */
  constructor(settings) {
    super();
    this.settings = settings;
    this.records = settings.records || new NoVoiceCallRecords();
    this.client = null;
    this.device = "";
    /** Calls on the device by gateway id: {id, callType, state, phoneNumber, onHold,
     * voiceCallId, parent}. */
    this.calls = new Map();
    /** Gateway events that only confirm a request from Salesforce: "type call" → count. */
    this.echoes = new Map();
    /** Waiters for the next new outbound call (a dial or a consultation). */
    this.newCalls = [];
  }

  /** With a token, connects at once and Salesforce is told the connector is ready;
   * without, asks Salesforce to show the page's sign-in (`showLogin`), after which the
   * page calls `signIn`. */
  async init() {
    if (!this.settings.gatewayUrl) throw new Error("no gateway address");
    if (!this.settings.token) return new InitResult({ showLogin: true, loginFrameHeight: LOGIN_FRAME_HEIGHT });
    await this._connect(this.settings.token);
    return new InitResult({});
  }

  /** Connects with the token the agent's sign-in gave and tells Salesforce the outcome
   * (`LOGIN_RESULT`; on success the library then reports the connector ready). Resolves
   * once Salesforce has been told; rejects with the reason the sign-in failed. */
  async signIn(token) {
    try {
      await this._connect(token);
    } catch (error) {
      await publishEvent({ eventType: Constants.EVENT_TYPE.LOGIN_RESULT, payload: new GenericResult({ success: false }) });
      throw error;
    }
    await publishEvent({ eventType: Constants.EVENT_TYPE.LOGIN_RESULT, payload: new GenericResult({ success: true }) });
  }

  /** Opens the gateway connection and logs the agent in to the switch if needed. */
  async _connect(token) {
    if (this.client) this.client.close();
    const client = new OpenCtiClient(this.settings.gatewayUrl, text(token));
    client.on("event", (event) => {
      this._onEvent(event).catch((error) => console.error("could not tell Salesforce about", event.type, error));
    });
    client.on("snapshot", (snapshot) => this._onSnapshot(snapshot));
    this.client = client;
    try {
      const snapshot = await client.connect();
      if (snapshot.agent_state && snapshot.agent_state.state === "logged_out") {
        await client.command({ type: "login" });
      }
    } catch (error) {
      client.close();
      this.client = null;
      throw error;
    }
  }

  getAgentConfig() {
    const phone = new Phone({ type: Constants.PHONE_TYPE.DESK_PHONE, number: this.device || undefined });
    return Promise.resolve(new AgentConfigResult({ phones: [Constants.PHONE_TYPE.DESK_PHONE], selectedPhone: phone }));
  }

  getCapabilities() {
    return Promise.resolve(
      new CapabilitiesResult({
        hasMute: false,
        hasRecord: false,
        hasMerge: false,
        hasSwap: false,
        hasBlindTransfer: true,
        hasContactSearch: true,
        hasPhoneBook: true,
      }),
    );
  }

  getActiveCalls() {
    const activeCalls = [...this.calls.values()].map((call) => this._phoneCall(call));
    return Promise.resolve(new ActiveCallsResult({ activeCalls }));
  }

  async acceptCall(call) {
    const known = this._call(call);
    await this._send({ type: "answer", call: known.id }, "call_connected");
    known.state = Constants.CALL_STATE.CONNECTED;
    return new CallResult({ call: this._phoneCall(known) });
  }

  async declineCall(call) {
    const known = this._call(call);
    await this._send({ type: "reject", call: known.id }, "call_ended");
    this.calls.delete(known.id);
    return new CallResult({ call: this._phoneCall(known, Constants.CALL_STATE.ENDED) });
  }

  async endCall(call) {
    const known = this._call(call);
    await this._send({ type: "hangup", call: known.id }, "call_ended");
    this.calls.delete(known.id);
    return new HangupResult({ calls: [this._phoneCall(known, Constants.CALL_STATE.ENDED)] });
  }

  /** The gateway has no mute: this fails, as the base library's `VendorConnector` does
   * for what a connector does not implement, and `getCapabilities` says `hasMute: false`
   * so that Salesforce offers no mute button. */
  mute() {
    return Promise.reject(new Error("mute is not supported: the opencti gateway has no mute"));
  }

  unmute() {
    return Promise.reject(new Error("unmute is not supported: the opencti gateway has no mute"));
  }

  async hold(call) {
    const known = this._call(call);
    await this._send({ type: "hold", call: known.id }, "call_held");
    known.onHold = true;
    return this._holdToggle(known);
  }

  async resume(call) {
    const known = this._call(call);
    await this._send({ type: "retrieve", call: known.id }, "call_retrieved");
    known.onHold = false;
    return this._holdToggle(known);
  }

  async setAgentStatus(agentStatus, statusInfo = {}) {
    const state = gatewayState(agentStatus, statusInfo);
    // A change asked for during a call takes effect after it.
    await this.client.command({ type: "set_agent_state", state, after_call: this.calls.size > 0 });
    return new GenericResult({ success: true });
  }

  /** Calls `contact.phoneNumber`; resolves once the gateway reports the new call. */
  async dial(contact) {
    const to = text(contact && contact.phoneNumber).trim();
    if (!to) throw { type: Constants.ERROR_TYPE.INVALID_DESTINATION, message: "no number to call" };
    const call = await this._newCall(false, () => this.client.command({ type: "make_call", to }));
    return new CallResult({ call: this._phoneCall(call) });
  }

  async sendDigits(digits) {
    const call = [...this.calls.values()].find((c) => c.state === Constants.CALL_STATE.CONNECTED && !c.onHold);
    if (!call) throw new Error("no call to send digits on");
    await this.client.command({ type: "send_dtmf", call: call.id, digits: text(digits) });
  }

  /** The agent's phone book, searched in the gateway's CRM by the text Salesforce's
   * filter holds (see `contactSearch`), as the library's phone-book contacts. */
  async getPhoneContacts(filter) {
    const found = await this.client.contacts(contactSearch(filter));
    const contacts = found.map(
      (entry) =>
        new Contact({
          id: text(entry.number),
          type: Constants.CONTACT_TYPE.PHONEBOOK,
          name: text(entry.contact && entry.contact.name),
          phoneNumber: text(entry.number),
          description: text(entry.contact && entry.contact.company) || undefined,
        }),
    );
    return new PhoneContactsResult({ contacts, contactTypes: [Constants.CONTACT_TYPE.PHONEBOOK] });
  }

  /** A blind transfer hands `call` to the contact; otherwise the call is held and the
   * contact called about it (a consultation), reported as a participant. */
  async addParticipant(contact, call, isBlindTransfer) {
    const known = this._call(call);
    const to = text(contact && contact.phoneNumber).trim();
    if (!to) throw { type: Constants.ERROR_TYPE.INVALID_DESTINATION, message: "no number to call" };
    if (isBlindTransfer) {
      await this._send({ type: "blind_transfer", call: known.id, to }, "call_ended");
      this.calls.delete(known.id);
      return new ParticipantResult({ initialCallHasEnded: true, callInfo: this._callInfo(known), phoneNumber: to, callId: known.id });
    }
    const leg = await this._newCall(true, () => this._send({ type: "consult", call: known.id, to }, "call_held"));
    known.onHold = true;
    return new ParticipantResult({ initialCallHasEnded: false, callInfo: this._callInfo(leg), phoneNumber: to, callId: leg.id });
  }

  /** Ends after-call work. The base library does not wait for this or look at its
   * outcome, so a failure is logged here. */
  async wrapUpCall() {
    try {
      await this.client.command({ type: "complete_wrap_up" });
    } catch (error) {
      console.error("could not end after-call work", error);
    }
  }

  async logout() {
    if (this.client) {
      await this.client.command({ type: "logout" });
      this.client.close();
      this.client = null;
    }
    this.calls.clear();
    return new LogoutResult({ success: true });
  }

  handleMessage() {}

  // --- phone side → Salesforce ---

  _onSnapshot(snapshot) {
    this.device = text(snapshot.device);
    const calls = new Map();
    for (const call of snapshot.calls || []) {
      if (call.state === "ended" || call.state === "failed") continue;
      const known = this.calls.get(text(call.id));
      calls.set(text(call.id), known || {
        id: text(call.id),
        callType: call.direction === "inbound" ? Constants.CALL_TYPE.INBOUND : Constants.CALL_TYPE.OUTBOUND,
        state: call.state === "ringing" || call.state === "offered" ? Constants.CALL_STATE.RINGING : Constants.CALL_STATE.CONNECTED,
        phoneNumber: text(call.direction === "inbound" ? call.from : call.to),
        onHold: call.state === "held",
        voiceCallId: null,
      });
    }
    this.calls = calls;
  }

  async _onEvent(event) {
    const id = text(event.call);
    if (id && this._isEcho(event.type, id)) return;
    switch (event.type) {
      case "call_offered": {
        const call = this._track(id, Constants.CALL_TYPE.INBOUND, text(event.from), Constants.CALL_STATE.RINGING);
        call.voiceCallId = await this._record(call, "Inbound", text(event.from), text(event.to) || this.device);
        return this._publish(Constants.EVENT_TYPE.CALL_STARTED, new CallResult({ call: this._phoneCall(call) }));
      }
      case "call_initiated": {
        const parent = event.consult_of ? text(event.consult_of) : null;
        const call = this._track(id, parent ? Constants.CALL_TYPE.ADD_PARTICIPANT : Constants.CALL_TYPE.OUTBOUND, text(event.to), Constants.CALL_STATE.RINGING);
        call.parent = parent;
        call.voiceCallId = await this._record(call, "Outbound", this.device, text(event.to));
        const waiter = this.newCalls.findIndex((w) => w.consult === Boolean(parent));
        if (waiter >= 0) {
          // Salesforce asked for this call: the base library reports it from the result.
          this.newCalls.splice(waiter, 1)[0].resolve(call);
          return;
        }
        if (parent) {
          // A consultation started elsewhere (another desktop, the desk phone).
          return this._publish(Constants.EVENT_TYPE.PARTICIPANT_ADDED, this._participant(call));
        }
        return this._publish(Constants.EVENT_TYPE.CALL_STARTED, new CallResult({ call: this._phoneCall(call) }));
      }
      case "call_connected":
        return this._known(id, (call) => {
          call.state = Constants.CALL_STATE.CONNECTED;
          if (call.parent) {
            return this._publish(Constants.EVENT_TYPE.PARTICIPANT_CONNECTED, this._participant(call));
          }
          return this._publish(Constants.EVENT_TYPE.CALL_CONNECTED, new CallResult({ call: this._phoneCall(call) }));
        });
      case "call_held":
      case "call_retrieved":
        return this._known(id, (call) => {
          call.onHold = event.type === "call_held";
          return this._publish(Constants.EVENT_TYPE.HOLD_TOGGLE, this._holdToggle(call));
        });
      case "party_joined":
        return this._known(id, (call) => {
          const party = event.party || {};
          // The party the call was with from the start, and anyone on a consultation
          // leg (itself the participant), are no participants of their own.
          if (call.parent || text(party.address) === call.phoneNumber) {
            call.initialParty = text(party.id);
            return undefined;
          }
          return this._publish(
            Constants.EVENT_TYPE.PARTICIPANT_ADDED,
            new ParticipantResult({ initialCallHasEnded: false, callInfo: this._callInfo(call), phoneNumber: text(party.address), callId: text(party.id) || call.id }),
          );
        });
      case "party_left":
        return this._known(id, (call) => {
          if (call.parent || text(event.party) === call.initialParty) return undefined;
          const leg = new PhoneCall({
            callId: text(event.party) || call.id,
            callType: Constants.CALL_TYPE.ADD_PARTICIPANT,
            state: Constants.CALL_STATE.ENDED,
            callAttributes: new PhoneCallAttributes({ participantType: Constants.PARTICIPANT_TYPE.THIRD_PARTY, parentId: call.id }),
          });
          return this._publish(Constants.EVENT_TYPE.PARTICIPANT_REMOVED, new CallResult({ call: leg }));
        });
      case "call_failed":
      case "call_ended":
        return this._known(id, (call) => {
          this.calls.delete(call.id);
          const ended = this._phoneCall(call, Constants.CALL_STATE.ENDED);
          if (call.parent) {
            // A consultation leg ending leaves the held call: a participant removed.
            return this._publish(Constants.EVENT_TYPE.PARTICIPANT_REMOVED, new CallResult({ call: ended }));
          }
          return this._publish(Constants.EVENT_TYPE.HANGUP, new HangupResult({ calls: [ended] }));
        });
      default:
        return undefined;
    }
  }

  _publish(eventType, payload) {
    return publishEvent({ eventType, payload });
  }

  _known(id, then) {
    const call = this.calls.get(id);
    return call ? then(call) : undefined;
  }

  _track(id, callType, phoneNumber, state) {
    const call = { id, callType, phoneNumber, state, onHold: false, voiceCallId: null, parent: null };
    this.calls.set(id, call);
    return call;
  }

  async _record(call, initiationMethod, from, to) {
    try {
      return await this.records.create({ vendorCallKey: call.id, initiationMethod, from, to, startTime: new Date() });
    } catch (error) {
      console.error("could not create the VoiceCall record", error);
      return null;
    }
  }

  /** Sends a command that makes a call (`consult`: a consultation leg) and resolves
   * with that call once the gateway reports it. */
  async _newCall(consult, send) {
    let waiter;
    const started = new Promise((resolve, reject) => {
      waiter = { consult, resolve, reject };
      this.newCalls.push(waiter);
    });
    const forget = () => {
      const index = this.newCalls.indexOf(waiter);
      if (index >= 0) this.newCalls.splice(index, 1);
    };
    try {
      await send();
    } catch (error) {
      forget();
      throw error;
    }
    const timer = setTimeout(() => {
      forget();
      waiter.reject(new Error("the gateway reported no new call"));
    }, NEW_CALL_TIMEOUT_MS);
    try {
      return await started;
    } finally {
      clearTimeout(timer);
    }
  }

  // --- requests from Salesforce → gateway ---

  /** Sends `command`, the gateway event `echo` on its call being only its confirmation. */
  async _send(command, echo) {
    this._expect(echo, command.call);
    try {
      await this.client.command(command);
    } catch (error) {
      this._unexpect(echo, command.call);
      throw error;
    }
  }

  _expect(type, id) {
    const key = `${type} ${id}`;
    this.echoes.set(key, (this.echoes.get(key) || 0) + 1);
  }

  _unexpect(type, id) {
    const key = `${type} ${id}`;
    const count = (this.echoes.get(key) || 0) - 1;
    if (count > 0) this.echoes.set(key, count);
    else this.echoes.delete(key);
  }

  _isEcho(type, id) {
    if (!this.echoes.has(`${type} ${id}`)) return false;
    this._unexpect(type, id);
    return true;
  }

  /** The call Salesforce names (by the `callId` this connector gave it). */
  _call(call) {
    const id = text(call && call.callId);
    const known = this.calls.get(id);
    if (!known) throw { type: Constants.ERROR_TYPE.INVALID_PARTICIPANT, message: `no call ${id}` };
    return known;
  }

  // --- the library's data classes ---

  _callInfo(call) {
    return new CallInfo({
      callStateTimestamp: new Date(),
      isOnHold: Boolean(call.onHold),
      initialCallId: call.parent || call.id,
      isSoftphoneCall: false,
      ...CALL_CONTROLS,
    });
  }

  _phoneCall(call, state = call.state) {
    const initial = !call.parent;
    return new PhoneCall({
      callId: call.id,
      callType: call.callType,
      contact: new Contact({ phoneNumber: call.phoneNumber || undefined }),
      state,
      phoneNumber: call.phoneNumber || undefined,
      callInfo: this._callInfo(call),
      callAttributes: new PhoneCallAttributes({
        voiceCallId: call.voiceCallId || undefined,
        participantType: initial ? Constants.PARTICIPANT_TYPE.INITIAL_CALLER : Constants.PARTICIPANT_TYPE.THIRD_PARTY,
        parentId: call.parent || undefined,
        isOnHold: Boolean(call.onHold),
      }),
    });
  }

  _participant(call) {
    return new ParticipantResult({ initialCallHasEnded: false, callInfo: this._callInfo(call), phoneNumber: call.phoneNumber, callId: call.id });
  }

  _holdToggle(call) {
    const initial = !call.parent;
    return new HoldToggleResult({
      isCustomerOnHold: initial ? Boolean(call.onHold) : false,
      isThirdPartyOnHold: initial ? false : Boolean(call.onHold),
      calls: { [call.id]: this._phoneCall(call) },
    });
  }
}

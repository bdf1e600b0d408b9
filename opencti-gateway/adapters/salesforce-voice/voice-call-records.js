// The server half of Salesforce Voice with partner telephony: every call must exist in
// Salesforce as a VoiceCall record, created by the vendor's back end through the SCRT2
// Telephony Integration REST API (`POST {scrtBaseUrl}/telephony/v1/voiceCalls`, signed
// with a JWT from the org's telephony integration certificate), whose answer
// `{voiceCallId}` goes into `PhoneCallAttributes.voiceCallId`.
//
// That needs a real org, its certificate and a back end to hold the private key, none of
// which the gateway has. The connector asks for records through this one interface; the
// stub below creates none, so calls reach Salesforce without a VoiceCall id.

/**
 * @typedef {object} VoiceCallRecords
 * @property {(call: {vendorCallKey: string, initiationMethod: "Inbound"|"Outbound",
 *   from: string, to: string, startTime: Date}) => Promise<string|null>} create
 *   the VoiceCall record's id for a new call, or null where none was made
 */

/** The stub: no VoiceCall records (the SCRT2 client is not written). */
export class NoVoiceCallRecords {
  async create() {
    return null;
  }
}

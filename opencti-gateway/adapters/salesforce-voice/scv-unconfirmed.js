// What this connector assumes about Salesforce Voice that is not confirmed by Salesforce's
// documentation or by running the library: kept here, apart, so that each can be changed
// in one place once checked against a live org. The README lists them.

/** Where the gateway's WebSocket address is read from the connector configuration that
 * Salesforce passes to `init`. The keys of a vendor's own section of the contact center
 * definition are the vendor's choice; how Salesforce spells them in `connectorConfig`
 * (with the section as a path prefix, like the documented `/reqGeneralInfo/reqAdapterUrl`)
 * is an assumption. */
export const GATEWAY_URL_KEY = "/reqOpenCti/reqGatewayUrl";

/** Omni-Channel's agent statuses in 3.x are `Online`, `Offline` and `AfterCallWork`, with
 * the chosen presence status in `statusInfo` (`statusId`, `statusApiName`,
 * `statusName`). Which presence statuses an org marks online is the org's; mapping
 * `Online` to the gateway's ready and everything else to not ready, with the presence
 * status's API name as the reason code, is an assumption. */
export function gatewayState(agentStatus, statusInfo = {}) {
  if (agentStatus === "Online") return { state: "ready" };
  const reason = statusInfo.statusApiName || statusInfo.statusName || (agentStatus === "AfterCallWork" ? "after_call_work" : "");
  return reason ? { state: "not_ready", reason: String(reason) } : { state: "not_ready" };
}

/** The call-control buttons Salesforce shows for a call (`CallInfo`'s flags). The
 * gateway has no mute and no recording control, so those are off; whether Salesforce's
 * call UI honours every flag in 3.x is not confirmed. */
export const CALL_CONTROLS = {
  muteEnabled: false,
  showMuteButton: false,
  recordEnabled: false,
  showRecordButton: false,
  swapEnabled: false,
  showSwapButton: false,
  conferenceEnabled: false,
  showMergeButton: false,
  addCallerEnabled: true,
  showAddCallerButton: true,
  showAddBlindTransferButton: false,
};

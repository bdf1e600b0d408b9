// What this connector assumes about Salesforce Voice that is not confirmed by Salesforce's
// documentation or by running the library: kept here, apart, so that each can be changed
// in one place once checked against a live org. The README lists them.

/** The height Salesforce gives the connector page while it shows its sign-in
 * (`InitResult.loginFrameHeight`, in pixels; the library's default is 350). That
 * Salesforce shows the page itself at this height is read from the library's names, not
 * seen in an org. */
export const LOGIN_FRAME_HEIGHT = 320;

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

/** The text to search the phone book for, from `getPhoneContacts(filter)`. Version 3.6.2
 * of the library passes Salesforce's `filter` through without defining it; the text is
 * read from `filter.contains`, as the later `ContactsFilter` (`contains`, `limit`,
 * `offset`, `types`) names it, and a bare string is taken as the text itself. Whether
 * Salesforce sends either shape to a 3.x connector is not confirmed. */
export function contactSearch(filter) {
  if (typeof filter === "string") return filter;
  if (filter && typeof filter.contains === "string") return filter.contains;
  return "";
}

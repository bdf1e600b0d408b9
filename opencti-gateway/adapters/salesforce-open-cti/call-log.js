// The call log Task that the softphone saves with `saveLog`, from what it saw of a call.
// No I/O here.

/** Task.WhoId takes a person (Contact or Lead); any other record goes to WhatId. */
const WHO_OBJECTS = new Set(["Contact", "Lead"]);

/** The Task's CallType picklist values. */
const TASK_CALL_TYPE = { inbound: "Inbound", outbound: "Outbound" };

/** `date` as the agent's local YYYY-MM-DD (Task.ActivityDate is a date, not a time). */
export function localDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/**
 * The `value` for `sforce.opencti.saveLog`.
 * @param {object} call   {id, direction: "inbound"|"outbound", number, connectedAt, endedAt
 *                        (microseconds, from the gateway's events), record}
 * @param {object|null} openRecord   the record the agent has open ({recordId, objectType})
 * @param {string|null} disposition  the wrap-up's disposition, if any
 * @param {Date} now
 */
export function taskFor(call, openRecord, disposition, now) {
  const duration = call.connectedAt && call.endedAt ? Math.max(0, Math.round((call.endedAt - call.connectedAt) / 1e6)) : 0;
  const number = call.number || "unknown number";
  const value = {
    entityApiName: "Task",
    Subject: call.direction === "inbound" ? `Call from ${number}` : `Call to ${number}`,
    Status: "Completed",
    ActivityDate: localDate(now),
    CallType: TASK_CALL_TYPE[call.direction],
    CallDurationInSeconds: duration,
    CallObject: call.id,
  };
  if (disposition) value.CallDisposition = disposition;
  // The call's own record (the caller's single match, the clicked record) first; the
  // record the agent has open fills what is left: who the call was with, what about.
  for (const record of [call.record, openRecord]) {
    if (!record || !record.recordId) continue;
    const slot = WHO_OBJECTS.has(record.objectType) ? "WhoId" : "WhatId";
    if (!value[slot]) value[slot] = record.recordId;
  }
  return value;
}

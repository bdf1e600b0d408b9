// The Salesforce Voice connector library, `@salesforce/scv-connector-base` 3.6.2, as the
// connector page loads it: its UMD build sets the global `SCVConnectorBase`. The
// connector's modules take every class from here, so that the data classes they build
// are the ones the library's validators check against (`instanceof`).

const library = globalThis.SCVConnectorBase;
if (!library || typeof library.VendorConnector !== "function") {
  throw new Error("load @salesforce/scv-connector-base (dist/scv-connector-base.js) before the connector");
}

export const {
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
  initializeConnector,
  publishEvent,
} = library;

// Starts the connector in the page Salesforce loads: the library first (its UMD build
// sets the global the connector's modules read), then the connector, registered with the
// library so that it answers Salesforce's SETUP_CONNECTOR. The agent signs in with the
// gateway's own sign-in (`api/sign-in`), as in the Open CTI softphone.

import { requestToken } from "../sign-in-request.js";

const $ = (selector) => document.querySelector(selector);

await new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = document.body.dataset.library;
  script.onload = resolve;
  script.onerror = () => reject(new Error(`could not load ${script.src}`));
  document.head.appendChild(script);
});

const { initializeConnector } = await import("./scv-library.js");
const { OpenCtiVoiceConnector } = await import("./connector.js");

const gatewayUrl = new URL("../ws", location.href);
gatewayUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const connector = new OpenCtiVoiceConnector({ gatewayUrl: gatewayUrl.href });
initializeConnector(connector);

$("#sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#sign-in-error").textContent = "";
  try {
    const token = await requestToken(new URL("../api/sign-in", location.href), $("#sign-in-agent").value, $("#sign-in-password").value);
    await connector.signIn(token);
    $("#sign-in").hidden = true;
  } catch (error) {
    // Shown as text, never as markup.
    $("#sign-in-error").textContent = error.message;
  }
});

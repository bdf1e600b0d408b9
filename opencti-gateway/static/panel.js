// The Call Control Panel page: the agent's token (typed, or from the sign-in page in the
// address's fragment) opens the desk.

import { OpenCtiClient } from "./opencti-client.js";
import { attachDesk } from "./panel-view.js";

const $ = (selector) => document.querySelector(selector);

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${location.pathname.replace(/[^/]*$/, "")}ws`;
}

async function start(token) {
  const client = new OpenCtiClient(wsUrl(), token);
  const desk = attachDesk(client);
  try {
    await client.connect();
  } catch (error) {
    $("#signin-error").textContent = `${error.kind}: ${error.message}`;
    return;
  }
  $("#signin").hidden = true;
  desk.open();
}

const hashParams = new URLSearchParams(location.hash.slice(1));
const fromHash = hashParams.get("token");
if (fromHash !== null) {
  // The token is a secret: once read, out of the address bar (and so out of history,
  // bookmarks and screen shares). The client keeps it in memory for reconnects.
  hashParams.delete("token");
  const rest = hashParams.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
}
$("#connect").onclick = () => start($("#token").value.trim());
if (fromHash) {
  $("#token").value = fromHash;
  start(fromHash);
}

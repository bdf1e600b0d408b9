// The Call Control Panel's desk: agent state, calls, buttons enabled from
// allowed_commands, a screen pop, and the event log. Pages that show a desk (the panel,
// the Salesforce softphone) hold its markup and call `attachDesk` with their client.

const $ = (selector, root = document) => root.querySelector(selector);
let client = null;
let refreshTimer = null;
let onCommand = () => {};
// The gateway's clock minus ours (microseconds), from the last event's stamp.
let skew = 0;
let shown = null;
const waiting = new Map();

/** Minutes and seconds (hours when there are any) since `since`, by the gateway's clock. */
function elapsed(since) {
  if (typeof since !== "number") return "";
  const seconds = Math.max(0, Math.floor((Date.now() * 1000 + skew - since) / 1e6));
  const h = Math.floor(seconds / 3600);
  const m = String(Math.floor((seconds % 3600) / 60)).padStart(2, "0");
  const s = String(seconds % 60).padStart(2, "0");
  return h ? `${h}:${m}:${s}` : `${m}:${s}`;
}

/** The clocks: time in state, each call's time in its state, the longest waits. */
function tick() {
  if (!shown) return;
  $("#agent-since").textContent = elapsed(shown.agent_state_since);
  for (const call of shown.calls) {
    const card = document.querySelector(`article.call[data-call-id="${CSS.escape(call.id)}"]`);
    if (card) $(".call-timer", card).textContent = elapsed(call.state_since);
  }
  const line = $("#queue-waiting");
  line.replaceChildren();
  for (const [queue, figures] of [...waiting.entries()].sort()) {
    const item = document.createElement("span");
    item.dataset.queue = queue;
    item.className = figures.waiting > 0 ? "busy" : "";
    const longest = figures.oldest_since ? `, longest ${elapsed(figures.oldest_since)}` : "";
    item.textContent = `${queue}: ${figures.waiting} waiting${longest}`;
    line.append(item);
  }
}

export function showError(error) {
  $("#error").textContent = error ? `${error.kind || "error"}: ${error.message}` : "";
}

async function send(command) {
  showError(null);
  const outcome = client.command(command);
  // Told at once: the events the command causes arrive after this.
  onCommand(command, outcome);
  try {
    await outcome;
  } catch (error) {
    showError(error);
  }
}

function logEvent(event) {
  const item = document.createElement("li");
  const call = event.call ? ` ${event.call}` : "";
  const state = event.state ? ` ${event.state.state}` : "";
  item.textContent = `#${event.seq} ${event.type}${call}${state}`;
  const log = $("#events");
  log.prepend(item);
  while (log.children.length > 50) log.lastChild.remove();
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(render, 30);
}

async function render() {
  let snapshot;
  try {
    snapshot = await client.refresh();
  } catch (error) {
    return;
  }
  $("#who").textContent = `${snapshot.agent} at ${snapshot.device}`;
  const state = snapshot.agent_state;
  $("#agent-state").textContent = state.reason ? `${state.state} (${state.reason})` : state.state;
  $("#agent-next").textContent = state.next ? `then ${state.next.state}` : "";
  $("#wrap-up").hidden = state.state !== "wrap_up";
  shown = snapshot;

  const agentAllowed = new Set(await client.allowedCommands().catch(() => []));
  for (const button of document.querySelectorAll("[data-agent]")) {
    const kind = button.dataset.agent;
    const command = kind === "ready" || kind === "not_ready" ? "set_agent_state" : kind;
    button.disabled = !agentAllowed.has(command);
  }

  const calls = $("#calls");
  calls.replaceChildren();
  if (snapshot.calls.length === 0) {
    calls.innerHTML = '<p class="empty">No calls.</p>';
  }
  for (const call of snapshot.calls) {
    const card = $("#call-template").content.firstElementChild.cloneNode(true);
    card.dataset.callId = call.id;
    const badge = $(".call-state", card);
    badge.textContent = call.state;
    badge.classList.add(call.state);
    const other = call.direction === "inbound" ? call.from : call.to;
    $(".call-who", card).textContent = other || call.id;
    const meta = [call.direction, call.role !== "primary" ? call.role : null, call.queue ? `queue ${call.queue}` : null, call.id];
    $(".call-meta", card).textContent = meta.filter(Boolean).join(" · ");
    for (const party of call.parties || []) {
      const item = document.createElement("li");
      item.textContent = `${party.name || party.address || party.id} `;
      const drop = document.createElement("button");
      drop.textContent = "Drop";
      drop.dataset.party = party.id;
      drop.disabled = call.role !== "conference";
      drop.onclick = () => send({ type: "drop_party", call: call.id, party: party.id });
      item.append(drop);
      $(".parties", card).append(item);
    }
    for (const [key, value] of Object.entries(call.data || {})) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value;
      $(".data", card).append(dt, dd);
    }
    const allowed = new Set(await client.allowedCommands(call.id).catch(() => []));
    for (const button of card.querySelectorAll("[data-call]")) {
      const kind = button.dataset.call;
      button.disabled = !allowed.has(kind);
      button.onclick = () => {
        const target = $(".target", card).value.trim();
        const command = { type: kind, call: call.id };
        if (kind === "consult" || kind === "blind_transfer") {
          if (!target) return showError({ kind: "bad_input", message: "enter a number to transfer or consult to" });
          command.to = target;
        }
        send(command);
      };
    }
    for (const button of card.querySelectorAll("[data-digit]")) {
      button.disabled = !allowed.has("send_dtmf");
      button.onclick = () => send({ type: "send_dtmf", call: call.id, digits: button.dataset.digit });
    }
    calls.append(card);
  }
  tick();
}

function showScreenPop(pop) {
  const section = $("#screen-pop");
  const contact = pop.contact;
  section.hidden = false;
  const box = $("#contact");
  box.replaceChildren();
  if (!contact) {
    box.textContent = `${pop.number}: not in the contact store`;
    return;
  }
  const fields = [["Name", contact.name], ["Company", contact.company], ["Account", contact.account], ["Tier", contact.tier], ["Notes", contact.notes], ["Number", pop.number]];
  const list = document.createElement("dl");
  list.className = "data";
  for (const [label, value] of fields) {
    if (!value) continue;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }
  box.append(list);
}

function wireAgentButtons() {
  for (const button of document.querySelectorAll("[data-agent]")) {
    button.onclick = () => {
      const kind = button.dataset.agent;
      const afterCall = $("#after-call").checked;
      if (kind === "login") send({ type: "login" });
      if (kind === "logout") send({ type: "logout" });
      if (kind === "ready") send({ type: "set_agent_state", state: { state: "ready" }, after_call: afterCall });
      if (kind === "not_ready") send({ type: "set_agent_state", state: { state: "not_ready", reason: $("#reason").value }, after_call: afterCall });
      if (kind === "complete_wrap_up") send({ type: "complete_wrap_up", disposition: $("#disposition").value });
      if (kind === "make_call") {
        const to = $("#dial").value.trim();
        if (!to) return showError({ kind: "bad_input", message: "enter a number to call" });
        send({ type: "make_call", to });
      }
    };
  }
}

/**
 * Shows `client`'s session in the page's desk markup. Call before `client.connect()` so
 * that no event is missed, then `open()` once connected.
 * @param {OpenCtiClient} deskClient
 * @param {object} [hooks]
 * @param {(command: object, outcome: Promise) => void} [hooks.onCommand]  told of each
 *   command the agent sends, with the promise of its confirmation
 */
export function attachDesk(deskClient, hooks = {}) {
  client = deskClient;
  onCommand = hooks.onCommand || (() => {});
  client.on("link", (state) => {
    const link = $("#link");
    link.className = `link ${state}`;
    link.textContent = `link ${state}`;
  });
  client.on("event", (event) => {
    if (typeof event.at === "number") skew = event.at - Date.now() * 1000;
    logEvent(event);
    scheduleRefresh();
  });
  client.on("queue_waiting", (figures) => {
    waiting.set(figures.queue, figures);
    tick();
  });
  client.on("snapshot", scheduleRefresh);
  client.on("screen_pop", showScreenPop);
  client.on("error", showError);
  return {
    open() {
      $("#desk").hidden = false;
      wireAgentButtons();
      scheduleRefresh();
      setInterval(tick, 1000);
    },
  };
}

// The wallboard: every queue as a tile (callers waiting, longest wait, service level,
// agents by state), charts of the last hour, and every agent with the supervisor's
// commands. A supervisor's token (typed, or from the sign-in page in the address's
// fragment) opens it. Everything shown is set as text, never as markup.

import { OpenCtiClient } from "./opencti-client.js";
import { PALETTE, STATES, drawLines, drawStacks } from "./wallboard-charts.js";

const $ = (selector) => document.querySelector(selector);
const HOUR = 3600e6;
const SAMPLE_EVERY = 10e6;

/** What the gateway said, merged: queues and agents by name, the charts' samples. */
const view = {
  skew: 0, // the gateway's clock minus ours, in microseconds
  canMonitor: false, // whether this phone system lets supervisors listen in
  threshold: new Map(),
  queues: new Map(),
  agents: new Map(),
  history: [],
};

const serverNow = () => Date.now() * 1000 + view.skew;

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${location.pathname.replace(/[^/]*$/, "")}ws`;
}

function clock(micros) {
  const seconds = Math.max(0, Math.floor(micros / 1e6));
  const h = Math.floor(seconds / 3600);
  const m = String(Math.floor((seconds % 3600) / 60)).padStart(2, "0");
  const s = String(seconds % 60).padStart(2, "0");
  return h ? `${h}:${m}:${s}` : `${m}:${s}`;
}

function percent(fraction) {
  return fraction === undefined || fraction === null ? "—" : `${Math.round(fraction * 100)}%`;
}

/** Milliseconds as seconds: tenths under ten seconds, whole seconds above. */
function seconds(ms) {
  if (ms === undefined || ms === null) return "—";
  if (ms >= 10000) return `${Math.round(ms / 1000)} s`;
  const tenths = Math.round(ms / 100);
  return `${Math.floor(tenths / 10)}.${tenths % 10} s`;
}

function levelClass(fraction) {
  if (fraction === undefined || fraction === null) return "";
  return fraction >= 0.8 ? "good" : fraction >= 0.6 ? "fair" : "poor";
}

function take(body) {
  if (typeof body.at === "number") view.skew = body.at - Date.now() * 1000;
  const queues = Array.isArray(body.queues) ? body.queues : body.queues ? body.queues.queues : [];
  for (const figures of queues || []) view.queues.set(figures.queue, figures);
  for (const agent of body.agents || []) view.agents.set(agent.agent, agent);
}

function sampleNow() {
  const last = view.history[view.history.length - 1];
  const at = serverNow();
  if (last && at - last.at < SAMPLE_EVERY) return;
  view.history.push({
    at,
    queues: [...view.queues.values()].map((f) => ({ queue: f.queue, waiting: f.waiting + f.ringing, service_level: f.service_level, agents: f.agents })),
  });
  while (view.history.length && view.history[0].at < at - HOUR) view.history.shift();
}

// ----- queue tiles -----

function figure(parent, name, label, size) {
  const cell = document.createElement("div");
  const value = document.createElement("span");
  value.className = size === "big" ? "value" : "";
  value.dataset.figure = name;
  const caption = document.createElement("span");
  caption.className = "label";
  caption.textContent = label;
  cell.append(value, caption);
  parent.appendChild(cell);
}

function tile(queue) {
  let node = document.querySelector(`.tile[data-queue="${CSS.escape(queue)}"]`);
  if (node) return node;
  node = document.createElement("article");
  node.className = "tile";
  node.dataset.queue = queue;
  const title = document.createElement("h2");
  title.textContent = queue;
  const big = document.createElement("div");
  big.className = "big";
  figure(big, "waiting", "waiting", "big");
  figure(big, "longest_wait", "longest wait", "big");
  figure(big, "service_level", "service level", "big");
  const small = document.createElement("div");
  small.className = "small";
  figure(small, "offered", "offered");
  figure(small, "answered", "answered");
  figure(small, "abandoned", "abandoned");
  figure(small, "asa", "avg answer");
  const states = document.createElement("div");
  states.className = "states";
  for (const state of STATES) {
    const part = document.createElement("span");
    part.className = state;
    part.dataset.bar = state;
    states.appendChild(part);
  }
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const state of [...STATES, "logged_in"]) {
    const item = document.createElement("span");
    if (state !== "logged_in") {
      const swatch = document.createElement("i");
      swatch.className = state;
      item.appendChild(swatch);
    }
    const count = document.createElement("b");
    count.dataset.figure = state;
    item.append(count, document.createTextNode(` ${state.replace("_", " ")}`));
    legend.appendChild(item);
  }
  node.append(title, big, small, states, legend);
  $("#queues").appendChild(node);
  return node;
}

function set(node, name, text, className) {
  const target = node.querySelector(`[data-figure="${name}"]`);
  target.textContent = text;
  if (className !== undefined) target.className = `value ${className}`;
}

function renderQueues() {
  const now = serverNow();
  for (const f of [...view.queues.values()].sort((a, b) => a.queue.localeCompare(b.queue))) {
    const node = tile(f.queue);
    set(node, "waiting", String(f.waiting + f.ringing));
    set(node, "longest_wait", f.oldest_since ? clock(now - f.oldest_since) : "—");
    set(node, "service_level", percent(f.service_level), levelClass(f.service_level));
    set(node, "offered", String(f.offered));
    set(node, "answered", String(f.answered));
    set(node, "abandoned", String(f.abandoned));
    set(node, "asa", seconds(f.average_speed_of_answer_ms));
    for (const state of [...STATES, "logged_in"]) set(node, state, String(f.agents[state] || 0));
    for (const state of STATES) {
      node.querySelector(`[data-bar="${state}"]`).style.flexGrow = String(f.agents[state] || 0);
    }
  }
}

// ----- charts -----

/** The line charts over the last hour, redrawn at each sample. */
function renderCharts() {
  const to = serverNow();
  const from = to - HOUR;
  const names = [...view.queues.keys()].sort();
  const series = (value) =>
    names.map((name, i) => ({
      name,
      colour: PALETTE[i % PALETTE.length],
      points: view.history
        .map((sample) => [sample.at, sample.queues.find((q) => q.queue === name)])
        .filter(([, q]) => q && value(q) !== undefined && value(q) !== null)
        .map(([at, q]) => [at, value(q)]),
    }));
  const waiting = series((q) => q.waiting);
  const most = Math.max(4, ...waiting.flatMap((s) => s.points.map(([, v]) => v)));
  drawLines($("#chart-waiting"), waiting, { from, to, yMax: Math.ceil(most / 4) * 4, label: (v) => String(Math.round(v)) });
  drawLines($("#chart-service-level"), series((q) => q.service_level), { from, to, yMax: 1, label: (v) => `${Math.round(v * 100)}%` });
}

/** The agents-by-state bars follow every update, not only the samples. */
function renderStates() {
  const names = [...view.queues.keys()].sort();
  drawStacks($("#chart-agents"), names.map((name) => ({ name, counts: view.queues.get(name).agents })));
}

// ----- agents -----

function describeCall(call, now) {
  const who = call.from || call.to || "";
  const since = call.state_since ? ` ${clock(now - call.state_since)}` : "";
  return `${call.state}${since} ${who}`.trim();
}

function renderAgents(client) {
  const now = serverNow();
  const body = $("#agents");
  for (const agent of [...view.agents.values()].sort((a, b) => a.agent.localeCompare(b.agent))) {
    let row = body.querySelector(`tr[data-agent="${CSS.escape(agent.agent)}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.agent = agent.agent;
      const cells = ["name", "state", "for", "calls"].map((field) => {
        const cell = document.createElement("td");
        cell.dataset.field = field;
        return cell;
      });
      cells[0].textContent = `${agent.agent} (${agent.device})`;
      cells[2].className = "timer";
      const actions = document.createElement("td");
      for (const [label, command] of [
        ["Not ready", { type: "force_not_ready", reason: "supervisor" }],
        ["Log out", { type: "force_log_out" }],
        ...(view.canMonitor
          ? [
              ["Listen", { type: "monitor", mode: "listen" }],
              ["Whisper", { type: "monitor", mode: "whisper" }],
              ["Barge", { type: "monitor", mode: "barge" }],
            ]
          : []),
      ]) {
        const button = document.createElement("button");
        button.textContent = label;
        button.dataset.action = command.mode || command.type;
        button.onclick = async () => {
          $("#status").textContent = `${label}: ${agent.agent}…`;
          try {
            await client.supervise({ ...command, agent: agent.agent });
            $("#status").textContent = `${label}: ${agent.agent}, done`;
          } catch (error) {
            $("#status").textContent = `${label}: ${agent.agent}, refused (${error.kind}): ${error.message}`;
          }
        };
        actions.appendChild(button);
      }
      row.append(...cells, actions);
      body.appendChild(row);
    }
    const state = agent.agent_state.state;
    const reason = agent.agent_state.reason ? ` (${agent.agent_state.reason})` : "";
    const stateCell = row.querySelector('[data-field="state"]');
    stateCell.textContent = "";
    const pill = document.createElement("span");
    pill.className = `pill ${state}`;
    pill.textContent = state.replace("_", " ") + reason;
    stateCell.appendChild(pill);
    row.querySelector('[data-field="for"]').textContent = agent.agent_state_since ? clock(now - agent.agent_state_since) : "";
    row.querySelector('[data-field="calls"]').textContent = agent.calls.map((call) => describeCall(call, now)).join("; ");
  }
}

// ----- the connection -----

async function start(token) {
  const client = new OpenCtiClient(wsUrl(), token);
  const render = () => {
    renderQueues();
    renderStates();
    renderAgents(client);
  };
  client.on("link", (state) => {
    $("#link").textContent = state === "up" ? "live" : state;
    $("#link").className = `link ${state}`;
  });
  client.on("centre", (centre) => {
    view.queues.clear();
    view.agents.clear();
    $("#queues").textContent = "";
    $("#agents").textContent = "";
    take(centre);
    view.canMonitor = centre.can_monitor === true;
    view.history = centre.history || [];
    sampleNow();
    render();
    renderCharts();
  });
  client.on("update", (update) => {
    take(update);
    render();
  });
  try {
    await client.connect();
  } catch (error) {
    $("#signin-error").textContent = `${error.kind}: ${error.message}`;
    return;
  }
  $("#signin").hidden = true;
  $("#board").hidden = false;
  // Clocks tick every second; the charts take a sample every ten.
  setInterval(() => {
    $("#clock").textContent = new Date(serverNow() / 1000).toLocaleTimeString();
    render();
    const before = view.history.length;
    sampleNow();
    if (view.history.length !== before) renderCharts();
  }, 1000);
}

const hashParams = new URLSearchParams(location.hash.slice(1));
const fromHash = hashParams.get("token");
if (fromHash !== null) {
  // The token is a secret: once read, out of the address bar.
  hashParams.delete("token");
  const rest = hashParams.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
}
$("#connect").onclick = () => start($("#token").value.trim());
if (fromHash) start(fromHash);

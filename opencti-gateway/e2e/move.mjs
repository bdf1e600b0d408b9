// Drives the Call Control Panel across two gateways of one site, as an agent whose
// browser is sent to another gateway mid-call would see it, and reports each milestone
// on stdout.
//
//   node move.mjs <gateway A panel URL with #token=...> <gateway B panel URL with #token=...> <number>
//
// On A: log in, get ready, call <number>, wait until connected. Then the page goes to
// B with the same token: the call is there, connected, and the agent holds, retrieves
// and hangs it up from B. Every event the page's client received is checked: each seq
// once, in order. Runs in the Chromium of chromium.mjs.

import { launchChromium } from "./chromium.mjs";

const [urlA, urlB, number] = process.argv.slice(2);
const say = (line) => console.log(line);
const timeout = 20000;

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
page.setDefaultTimeout(timeout);
page.on("pageerror", (error) => console.error("page error:", error.message));

// What the page receives over its WebSockets, on either gateway, in order: each event's
// seq, and each snapshot's (as "s<seq>").
const seqs = [];
page.on("websocket", (socket) => {
  socket.on("framereceived", ({ payload }) => {
    try {
      const message = JSON.parse(payload);
      if (message.event) seqs.push(message.event.seq);
      if (message.snapshot) seqs.push(`s${message.snapshot.seq}`);
    } catch {}
  });
});

const agentState = (state) => page.waitForFunction(
  (s) => document.querySelector("#agent-state")?.textContent.startsWith(s), state, { timeout });
const callCard = () => page.locator("article.call").first();
const callState = (state) => page.waitForFunction(
  (s) => document.querySelector("article.call .call-state")?.textContent === s, state, { timeout });
const noCalls = () => page.waitForFunction(
  () => document.querySelectorAll("article.call").length === 0, null, { timeout });
const click = async (locator) => {
  await locator.waitFor();
  await page.waitForFunction((el) => el && !el.disabled, await locator.elementHandle(), { timeout });
  await locator.click();
};
const linkUp = () => page.waitForFunction(() => document.querySelector("#link").textContent === "link up");

try {
  await page.goto(urlA);
  await page.locator("#desk").waitFor({ state: "visible" });
  await linkUp();
  await click(page.locator('[data-agent="login"]'));
  await agentState("not_ready");
  await click(page.locator('[data-agent="ready"]'));
  await agentState("ready");
  await page.locator("#dial").fill(number);
  await click(page.locator('[data-agent="make_call"]'));
  await callState("connected");
  const callOnA = await callCard().getAttribute("data-call-id");
  say("CONNECTED ON A");

  await page.goto(urlB);
  await page.locator("#desk").waitFor({ state: "visible" });
  await linkUp();
  await callState("connected");
  const callOnB = await callCard().getAttribute("data-call-id");
  if (callOnA !== callOnB) throw new Error(`the call on B is ${callOnB}, not ${callOnA}`);
  say("CONNECTED ON B");

  await click(callCard().locator('[data-call="hold"]'));
  await callState("held");
  await click(callCard().locator('[data-call="retrieve"]'));
  await callState("connected");
  await click(callCard().locator('[data-call="hangup"]'));
  await noCalls();
  say("HUNG UP ON B");

  // Across the move: a snapshot, then each event the one after the last seq the page
  // had (from an event or a snapshot): nothing missing, nothing twice.
  let last = null;
  for (const item of seqs) {
    if (typeof item === "string") {
      const seq = Number(item.slice(1));
      if (last !== null && seq < last) throw new Error(`a snapshot at ${seq} after ${last}: ${seqs}`);
      last = seq;
    } else {
      if (item !== last + 1) throw new Error(`event ${item} after ${last}: ${seqs}`);
      last = item;
    }
  }
  say(`SEQS ${seqs.join(",")}`);
  say("DONE");
} catch (error) {
  console.error(error);
  await page.screenshot({ path: "/tmp/opencti-move-failure.png" }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}

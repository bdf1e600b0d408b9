// Drives the Call Control Panel in headless Chromium, as an agent would, and reports
// each milestone on stdout so that the Rust test can make the simulated phone system act.
//
//   node panel.mjs <panel URL with #token=...> <screenshot dir>
//
// Runs in the Chromium of chromium.mjs.

import { launchChromium } from "./chromium.mjs";

const [url, shots] = process.argv.slice(2);
const say = (line) => console.log(line);
const timeout = 15000;

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
page.setDefaultTimeout(timeout);
page.on("pageerror", (error) => console.error("page error:", error.message));
// The gateway's Content-Security-Policy must not block anything the panel needs.
const blocked = [];
page.on("console", (message) => {
  if (message.text().includes("Content Security Policy")) blocked.push(message.text());
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

try {
  await page.goto(url);
  await page.locator("#desk").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelector("#link").textContent === "link up");
  // The token is read from the address and taken out of it.
  const address = await page.evaluate(() => location.href);
  if (address.includes("token")) throw new Error("the token is still in the address bar");

  await click(page.locator('[data-agent="login"]'));
  await agentState("not_ready");
  await click(page.locator('[data-agent="ready"]'));
  await agentState("ready");
  // The time in state runs, and the agent's queue says nobody waits.
  await page.waitForFunction(() => /^\d\d:\d\d$/.test(document.querySelector("#agent-since").textContent));
  await page.waitForFunction(() => document.querySelector('#queue-waiting [data-queue="support"]')?.textContent === "support: 0 waiting");
  say("READY");

  // The first call: screen pop, answer, hold, retrieve, blind transfer.
  await callState("offered");
  // Ringing: the call's timer runs, and the caller counts as waiting in the queue.
  await page.waitForFunction(() => /^\d\d:\d\d$/.test(document.querySelector("article.call .call-timer").textContent));
  await page.waitForFunction(() => document.querySelector('#queue-waiting [data-queue="support"]').textContent.startsWith("support: 1 waiting, longest 00:"));
  await page.locator("#screen-pop").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelector("#contact").textContent.includes("Grace Hopper"));
  if (shots) await page.screenshot({ path: `${shots}/panel-offered.png` });
  await click(callCard().locator('[data-call="answer"]'));
  await callState("connected");
  await page.waitForFunction(() => document.querySelector('#queue-waiting [data-queue="support"]').textContent === "support: 0 waiting");
  if (shots) await page.screenshot({ path: `${shots}/panel-connected.png` });
  await click(callCard().locator('[data-call="hold"]'));
  await callState("held");
  await click(callCard().locator('[data-call="retrieve"]'));
  await callState("connected");
  await callCard().locator(".target").fill("1900");
  await click(callCard().locator('[data-call="blind_transfer"]'));
  await noCalls();
  await agentState("wrap_up");
  await page.selectOption("#disposition", "resolved");
  await click(page.locator('[data-agent="complete_wrap_up"]'));
  await agentState("ready");
  say("NEXT");

  // The second call: answer, hang up, wrap up.
  await callState("offered");
  await page.waitForFunction(() => document.querySelector("#contact").textContent.includes("Ada Lovelace"));
  await click(callCard().locator('[data-call="answer"]'));
  await callState("connected");
  await click(callCard().locator('[data-call="hangup"]'));
  await noCalls();
  await agentState("wrap_up");
  if (shots) await page.screenshot({ path: `${shots}/panel-wrap-up.png` });
  await page.selectOption("#disposition", "follow-up");
  await click(page.locator('[data-agent="complete_wrap_up"]'));
  await agentState("ready");
  if (blocked.length) throw new Error(`blocked by the CSP: ${blocked.join("; ")}`);
  say("DONE");
} catch (error) {
  console.error("FAILED:", error.message);
  if (shots) await page.screenshot({ path: `${shots}/panel-failure.png` }).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();

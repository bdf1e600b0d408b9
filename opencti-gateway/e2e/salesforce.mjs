// Drives the Salesforce Open CTI softphone in headless Chromium, framed by a stand-in
// Salesforce page on another origin (fake-salesforce/), and reports each milestone on
// stdout so that the Rust test can make the simulated phone system act. At the end it
// prints every Open CTI call the softphone made (CALLS <json>) for the test to check.
//
//   node salesforce.mjs <stand-in Salesforce page URL> <screenshot dir>
//
// Runs in the Chromium of chromium.mjs.

import { launchChromium } from "./chromium.mjs";

const [url, shots] = process.argv.slice(2);
const say = (line) => console.log(line);
const timeout = 15000;

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
page.setDefaultTimeout(timeout);
page.on("pageerror", (error) => console.error("page error:", error.message));
// The gateway's Content-Security-Policy must let the softphone run Salesforce's library
// (from the framing origin) and block nothing else it needs.
const blocked = [];
page.on("console", (message) => {
  if (message.text().includes("Content Security Policy")) blocked.push(message.text());
});

const phone = page.frameLocator("#softphone");
const softphoneFrame = () => page.frames().find((frame) => frame.url().includes("/salesforce/softphone"));
const inPhone = (fn, arg) => softphoneFrame().waitForFunction(fn, arg, { timeout });
const agentState = (state) => inPhone(
  (s) => document.querySelector("#agent-state")?.textContent.startsWith(s), state);
const callCard = () => phone.locator("article.call").first();
const callState = (state) => inPhone(
  (s) => document.querySelector("article.call .call-state")?.textContent === s, state);
const noCalls = () => inPhone(() => document.querySelectorAll("article.call").length === 0);
const click = async (locator) => {
  await locator.waitFor();
  await softphoneFrame().waitForFunction((el) => el && !el.disabled, await locator.elementHandle(), { timeout });
  await locator.click();
};
/** Waits until Salesforce has seen `count` calls of `method`. */
const openCtiCalls = (method, count) => page.waitForFunction(
  ([m, n]) => window.openCtiCalls.filter((c) => c.method === m).length >= n, [method, count], { timeout });
const callId = () => callCard().evaluate((card) => card.dataset.callId);

try {
  await page.goto(url);
  await phone.locator("#salesforce-status").filter({ hasText: "Connected to Salesforce." }).waitFor();
  const origins = await page.evaluate(() => [location.origin, new URL(document.getElementById("softphone").src).origin]);
  if (origins[0] === origins[1]) throw new Error("the softphone must be framed from another origin");

  // Click-to-dial before sign-in does nothing: Salesforce has not been told to enable it.
  if (await page.evaluate(() => window.fireClickToDial({ number: 1900 }))) throw new Error("click-to-dial was enabled before sign-in");

  await phone.locator("#sign-in-agent").fill("alice");
  await phone.locator("#sign-in-password").fill("correct horse");
  await phone.locator("#sign-in button").click();
  await phone.locator("#desk").waitFor({ state: "visible" });
  await inPhone(() => document.querySelector("#link").textContent === "link up");
  await click(phone.locator('[data-agent="login"]'));
  await agentState("not_ready");
  await openCtiCalls("enableClickToDial", 1);

  // A click on a contact's number places the call, with the record as call data.
  const clicked = await page.evaluate(() => window.fireClickToDial({
    number: 1900, recordId: "003000000000009AAA", recordName: "Katherine Johnson", objectType: "Contact",
  }));
  if (!clicked) throw new Error("click-to-dial was not enabled");
  await callState("connected");
  say(`CALL ${await callId()}`);
  await click(callCard().locator('[data-call="hangup"]'));
  await noCalls();
  await openCtiCalls("refreshView", 1);

  await click(phone.locator('[data-agent="ready"]'));
  await agentState("ready");
  say("READY");

  // An inbound call from a known contact: the panel opens, the contact pops; the agent
  // opens the case the call is about, holds, retrieves, hangs up and wraps up.
  await callState("offered");
  say(`CALL ${await callId()}`);
  await openCtiCalls("searchAndScreenPop", 1);
  await page.waitForFunction(() => document.getElementById("record-name").textContent === "Grace Hopper");
  await click(callCard().locator('[data-call="answer"]'));
  await callState("connected");
  if (shots) await page.screenshot({ path: `${shots}/salesforce-softphone.png` });
  await page.evaluate(() => window.navigateTo({
    url: "/lightning/r/Case/500000000000002AAA/view", recordId: "500000000000002AAA", recordName: "00001002", objectType: "Case",
  }));
  await click(callCard().locator('[data-call="hold"]'));
  await callState("held");
  await click(callCard().locator('[data-call="retrieve"]'));
  await callState("connected");
  await click(callCard().locator('[data-call="hangup"]'));
  await noCalls();
  await agentState("wrap_up");
  await phone.locator("#disposition").selectOption("resolved");
  await click(phone.locator('[data-agent="complete_wrap_up"]'));
  await agentState("ready");
  await openCtiCalls("refreshView", 2);

  // Salesforce refuses the next call's log: the agent sees why, and saves it again.
  await page.evaluate(() => { window.failSaveLog = true; });
  say("NEXT");
  await callState("offered");
  say(`CALL ${await callId()}`);
  await click(callCard().locator('[data-call="answer"]'));
  await callState("connected");
  await click(callCard().locator('[data-call="hangup"]'));
  await noCalls();
  await agentState("wrap_up");
  await phone.locator("#disposition").selectOption("no-action");
  await click(phone.locator('[data-agent="complete_wrap_up"]'));
  await phone.locator("#unsaved").waitFor({ state: "visible" });
  const shown = await phone.locator("#unsaved-reason").textContent();
  if (!shown.includes("GENERIC_ERROR: Call Result: bad value for restricted picklist field: no-action")) {
    throw new Error(`the refusal is not shown to the agent: ${shown}`);
  }
  if (shots) await page.screenshot({ path: `${shots}/salesforce-unsaved.png` });
  await page.evaluate(() => { window.failSaveLog = false; });
  await click(phone.locator("#unsaved-retry"));
  await phone.locator("#unsaved").waitFor({ state: "hidden" });
  await openCtiCalls("refreshView", 3);

  // A caller with two matches: Salesforce shows them, the agent opens the lead.
  say("MORE");
  await callState("offered");
  say(`CALL ${await callId()}`);
  await openCtiCalls("searchAndScreenPop", 3);
  await click(callCard().locator('[data-call="answer"]'));
  await callState("connected");
  await page.evaluate(() => window.navigateTo({
    url: "/lightning/r/Lead/00Q000000000001AAA/view", recordId: "00Q000000000001AAA", recordName: "Alan Turing", objectType: "Lead",
  }));
  await click(callCard().locator('[data-call="hangup"]'));
  await noCalls();
  await agentState("wrap_up");
  await phone.locator("#disposition").selectOption("escalated");
  await click(phone.locator('[data-agent="complete_wrap_up"]'));
  await agentState("ready");
  await openCtiCalls("refreshView", 4);

  await click(phone.locator('[data-agent="logout"]'));
  await agentState("logged_out");
  await openCtiCalls("disableClickToDial", 1);
  if (blocked.length) throw new Error(`blocked by the CSP: ${blocked.join("; ")}`);
  const today = await softphoneFrame().evaluate(() => {
    const now = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  });
  say(`DATE ${today}`);
  say(`CALLS ${JSON.stringify(await page.evaluate(() => window.openCtiCalls))}`);
  say("DONE");
} catch (error) {
  console.error("FAILED:", error.message);
  if (shots) await page.screenshot({ path: `${shots}/salesforce-failure.png` }).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();

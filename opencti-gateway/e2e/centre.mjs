// Two agents of one contact centre, each in their own headless Chromium page, signed in
// through the sign-in page of `opencti serve`: a queue call is offered to the first,
// answered, consulted to the second and transferred to them; then the phone system
// restarts under both desks. Milestones go to stdout for the Rust test, which plays the
// customer and restarts Asterisk.
//
//   node centre.mjs <gateway URL> <first agent>:<password> <first's extension>
//                   <second agent>:<password> <second's extension> <customer's name>
//
// Runs in the Chromium of chromium.mjs.

import { createInterface } from "node:readline";
import { launchChromium } from "./chromium.mjs";

const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async () => {
  const { value, done } = await input.next();
  if (done) throw new Error("the test closed its end");
  return value;
};

const [base, first, firstExten, second, secondExten, customer] = process.argv.slice(2);
const say = (line) => console.log(line);
const timeout = 20000;
// A restart of the phone system: the link drops, Asterisk boots, the link reconnects.
const restartTimeout = 90000;

const browser = await launchChromium();

// One agent's page, with the helpers the steps below use.
async function desk(credentials) {
  const [agent, password] = credentials.split(":");
  // Separate contexts: two agents' tokens never share a browser profile.
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("pageerror", (error) => console.error(`${agent} page error:`, error.message));
  const blocked = [];
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) blocked.push(message.text());
  });
  await page.goto(new URL("sign-in", base).href);
  await page.fill("#agent", agent);
  await page.fill("#password", password);
  await page.click('#sign-in button[type="submit"]');
  await page.locator("#desk").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelector("#link").textContent === "link up");
  const d = {
    agent,
    page,
    blocked,
    cards: () => page.locator("article.call"),
    card: (state) => page.locator("article.call", {
      has: page.locator(`.call-state.${state}`),
    }).first(),
    async state(prefix, wait = timeout) {
      await page.waitForFunction(
        (s) => document.querySelector("#agent-state")?.textContent.startsWith(s), prefix, { timeout: wait });
    },
    async calls(n, wait = timeout) {
      await page.waitForFunction(
        (n) => document.querySelectorAll("article.call").length === n, n, { timeout: wait });
    },
    async callIn(state) {
      await page.locator(`article.call .call-state.${state}`).first().waitFor({ timeout });
    },
    async click(locator) {
      await locator.waitFor();
      await page.waitForFunction((el) => el && !el.disabled, await locator.elementHandle(), { timeout });
      await locator.click();
    },
    // Whether the event log shows `type` after entry number `after`.
    async logged(type, after, wait = timeout) {
      await page.waitForFunction(([type, after]) => [...document.querySelectorAll("#events li")]
        .some((li) => {
          const [seq, name] = li.textContent.split(" ");
          return Number(seq.slice(1)) > after && name === type;
        }), [type, after], { timeout: wait });
    },
    async lastSeq() {
      return page.evaluate(() => Math.max(0, ...[...document.querySelectorAll("#events li")]
        .map((li) => Number(li.textContent.split(" ")[0].slice(1)))));
    },
  };
  return d;
}

// Each page's calls and event log, for a failure's message.
const desks = [];
async function dump() {
  for (const d of desks) {
    const seen = await d.page.evaluate(() => ({
      calls: [...document.querySelectorAll("article.call")].map((c) => c.textContent.replace(/\s+/g, " ").slice(0, 200)),
      events: [...document.querySelectorAll("#events li")].map((li) => li.textContent).reverse(),
      error: document.querySelector("#error")?.textContent,
    })).catch((e) => ({ unreadable: e.message }));
    console.error(`${d.agent}:`, JSON.stringify(seen, null, 1));
  }
}

try {
  const a = await desk(first);
  const b = await desk(second);
  desks.push(a, b);
  for (const d of [a, b]) {
    if ((await d.page.evaluate(() => location.href)).includes("token")) {
      throw new Error(`${d.agent}: the token is still in the address bar`);
    }
    if (await d.page.locator('[data-agent="login"]').isEnabled()) {
      await d.click(d.page.locator('[data-agent="login"]'));
    }
    await d.state("not_ready");
  }
  await a.click(a.page.locator('[data-agent="ready"]'));
  await a.state("ready");
  say("READY");

  // The queue offers the customer to the agent who is ready; the desk answers.
  await a.callIn("offered");
  await a.click(a.card("offered").locator('[data-call="answer"]'));
  await a.callIn("connected");
  say("ANSWERED");

  // Consult the second agent: the customer is held, the second agent's phone rings and
  // answers, then the transfer joins the customer to them.
  await a.card("connected").locator(".target").fill(secondExten);
  await a.click(a.card("connected").locator('[data-call="consult"]'));
  await a.calls(2);
  await a.callIn("held");
  await b.callIn("connected");
  await a.page.waitForFunction(() => [...document.querySelectorAll("article.call .call-state")]
    .some((s) => s.textContent === "connected"), null, { timeout });
  say("CONSULTED");
  const complete = a.page.locator('article.call [data-call="complete_transfer"]:not([disabled])').first();
  await a.click(complete);
  await a.calls(0);
  await b.calls(1);
  await b.callIn("connected");
  // Bob's call now has the customer on the other end, alone: Alice, and the consult
  // leg that carried her call to Bob, have left it.
  const parties = () => b.page.evaluate(() =>
    [...document.querySelectorAll("article.call .parties li")].map((li) => li.textContent.replace(/ Drop$/, "")));
  try {
    await b.page.waitForFunction(([name, alice]) => {
      const parties = [...document.querySelectorAll("article.call .parties li")].map((li) => li.textContent);
      return parties.length === 1 && parties[0].startsWith(name) && !parties[0].includes(alice);
    }, [customer, firstExten], { timeout });
  } catch (error) {
    throw new Error(`bob's call has the parties ${JSON.stringify(await parties())}`);
  }
  console.error("bob's call:", await b.page.locator("article.call").first().evaluate((c) =>
    c.textContent.replace(/\s+/g, " ").slice(0, 120)));
  say("TRANSFERRED");

  // The phone system restarts: both desks see the link drop and come back, and end
  // with what Asterisk has (its restart hung every call up).
  const marks = [await a.lastSeq(), await b.lastSeq()];
  say("RESTART");
  for (const [i, d] of [a, b].entries()) {
    await d.logged("link_down", marks[i], restartTimeout);
    await d.logged("link_up", marks[i], restartTimeout);
    // A link_up always resynchronises, and says so.
    await d.logged("resynced", marks[i], restartTimeout);
    await d.calls(0, restartTimeout);
  }
  say("RESTARTED");
  // The test reads Asterisk's queue after its restart and says what each desk must
  // show: `EXPECT alice=logged_out bob=logged_out`.
  const expect = (await nextLine()).split(" ").slice(1).map((pair) => pair.split("="));
  for (const [agent, state] of expect) {
    const d = [a, b].find((d) => d.agent === agent);
    if (!d) throw new Error(`no desk for ${agent}`);
    try {
      await d.state(state);
    } catch (error) {
      throw new Error(`${agent} shows ${await d.page.locator("#agent-state").textContent()}, not ${state}`);
    }
  }
  for (const d of [a, b]) {
    if (d.blocked.length) throw new Error(`${d.agent}: blocked by the CSP: ${d.blocked.join("; ")}`);
  }
  say("DONE");
} catch (error) {
  console.error("FAILED:", error.message);
  await dump();
  await browser.close();
  process.exit(1);
}
await browser.close();

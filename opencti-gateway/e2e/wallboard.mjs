// Opens the wallboard in headless Chromium as a supervisor would, and checks its numbers
// against the simulated switch's own counts, which the Rust test writes to files:
//
//   node wallboard.mjs <wallboard URL with #token=...> <exchange dir> <screenshot dir>
//
// 1. OPEN once the tiles show; the test then runs a busy period.
// 2. When <dir>/counts.json appears (the switch's counts once the centre is quiet), every
//    figure on the page must equal them; MATCHED.
// 3. The supervisor makes every agent not ready with the page's buttons (the simulator
//    cannot listen in: no such button); NOT READY once the page shows them so.
// 4. When <dir>/caller.json appears (one caller just joined), the page must show the
//    caller waiting within a second; DONE.

import { existsSync, readFileSync } from "node:fs";
import { launchChromium } from "./chromium.mjs";

const [url, dir, shots] = process.argv.slice(2);
const say = (line) => console.log(line);
const timeout = 60000;

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
page.setDefaultTimeout(timeout);
page.on("pageerror", (error) => console.error("page error:", error.message));
const blocked = [];
page.on("console", (message) => {
  if (message.text().includes("Content Security Policy")) blocked.push(message.text());
});

const fileAppears = async (name) => {
  const path = `${dir}/${name}`;
  const deadline = Date.now() + 120000;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`no ${name}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // Written whole, then renamed into place by the test.
  return JSON.parse(readFileSync(path, "utf8"));
};

/** Every figure of every queue tile, as the page shows it. */
const shown = () =>
  page.evaluate(() => {
    const out = {};
    for (const tile of document.querySelectorAll(".tile")) {
      const figures = {};
      for (const node of tile.querySelectorAll("[data-figure]")) figures[node.dataset.figure] = node.textContent;
      out[tile.dataset.queue] = figures;
    }
    return out;
  });

const differences = (page, expected) => {
  const wrong = [];
  for (const [queue, figures] of Object.entries(expected)) {
    for (const [name, value] of Object.entries(figures)) {
      const seen = page[queue] && page[queue][name];
      if (seen !== value) wrong.push(`${queue}.${name}: page ${seen}, switch ${value}`);
    }
  }
  return wrong;
};

try {
  await page.goto(url);
  await page.locator("#board").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelectorAll(".tile").length === 2);
  await page.waitForFunction(() => document.querySelector("#link").textContent === "live");
  const address = await page.evaluate(() => location.href);
  if (address.includes("token")) throw new Error("the token is still in the address bar");
  say("OPEN");

  // Halfway through the busy period: the picture for the docs.
  if (shots) {
    await new Promise((resolve) => setTimeout(resolve, 15000));
    await page.screenshot({ path: `${shots}/wallboard-busy.png`, fullPage: true });
  }

  // 2. The busy period is over: the page agrees with the switch, figure by figure.
  const counts = await fileAppears("counts.json");
  let wrong = [];
  const until = Date.now() + 2000;
  do {
    wrong = differences(await shown(), counts);
    if (wrong.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  } while (Date.now() < until);
  if (wrong.length) throw new Error(`the wallboard disagrees with the switch: ${wrong.join("; ")}`);
  say(`MATCHED ${JSON.stringify(await shown())}`);
  // The charts have something to draw: a line per queue, a bar per queue.
  await page.waitForFunction(() => document.querySelectorAll("#chart-waiting path.series").length === 2);
  await page.waitForFunction(() => document.querySelectorAll("#chart-service-level path.series").length === 2);
  // The agents-by-state bars follow the tiles: every logged-in agent is ready now.
  await page.waitForFunction(() => {
    const bars = [...document.querySelectorAll("#chart-agents rect[data-state]")];
    return bars.length === 2 && bars.every((bar) => bar.dataset.state === "ready");
  });
  if (shots) await page.screenshot({ path: `${shots}/wallboard.png`, fullPage: true });

  // 3. Every agent not ready, by the supervisor's buttons.
  const agents = await page.locator("#agents tr").count();
  if (agents !== 10) throw new Error(`${agents} agents on the page, not 10`);
  for (let i = 0; i < agents; i++) {
    const row = page.locator("#agents tr").nth(i);
    await row.locator('[data-action="force_not_ready"]').click();
    await page.waitForFunction(() => /done|refused/.test(document.querySelector("#status").textContent));
    const status = await page.locator("#status").textContent();
    if (!status.endsWith("done")) throw new Error(`not ready refused: ${status}`);
  }
  await page.waitForFunction(() => [...document.querySelectorAll("#agents .pill")].every((p) => p.textContent.startsWith("not ready")));
  // The simulator cannot listen in: the page offers no such button.
  const listen = await page.locator('#agents [data-action="listen"], #agents [data-action="whisper"], #agents [data-action="barge"]').count();
  if (listen !== 0) throw new Error(`${listen} listen-in buttons on a phone system that cannot`);
  say("NOT READY");

  // 4. One caller joins: on the page within a second.
  const caller = await fileAppears("caller.json");
  await page.waitForFunction(
    (q) => document.querySelector(`.tile[data-queue="${q}"] [data-figure="waiting"]`).textContent === "1",
    caller.queue,
    { timeout: 1000 },
  );
  // From the moment the switch had the caller (the test's clock, in milliseconds).
  const latency = Date.now() - caller.joined_ms;
  if (latency > 1000) throw new Error(`the caller showed after ${latency} ms`);
  say(`SHOWN ${latency} ms`);
  if (blocked.length) throw new Error(`blocked by the CSP: ${blocked.join("; ")}`);
  say("DONE");
} catch (error) {
  console.error("FAILED:", error.message);
  if (shots) await page.screenshot({ path: `${shots}/wallboard-failure.png`, fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();

// The wallboard's charts: line charts over the last hour and stacked bars of agents by
// state, drawn as SVG elements. Every label is set as text, never as markup.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 220;
const LEFT = 46;
const RIGHT = 12;
const TOP = 12;
const BOTTOM = 28;

/** The colours of the queues' lines, in queue order. */
export const PALETTE = ["#4c8dff", "#f29d38", "#3fb96b", "#e05d9c", "#a377f0", "#3ec7c7"];

/** The states an agent can be counted in, in the order the bars stack them. */
export const STATES = ["ready", "reserved", "busy", "wrap_up", "not_ready"];
const STATE_COLOURS = { ready: "#3fb96b", reserved: "#4c8dff", busy: "#f29d38", wrap_up: "#a377f0", not_ready: "#7b8496" };

function element(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function clear(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
}

/**
 * Lines of `series` ([{name, colour, points: [[microseconds, value], ...]}]) between
 * `from` and `to` (microseconds), with values from 0 to `yMax` labelled by `label(v)`.
 */
export function drawLines(svg, series, { from, to, yMax, label }) {
  clear(svg);
  const plotW = WIDTH - LEFT - RIGHT;
  const plotH = HEIGHT - TOP - BOTTOM;
  const span = Math.max(1, to - from);
  const x = (t) => LEFT + ((t - from) / span) * plotW;
  const y = (v) => TOP + plotH - (Math.min(v, yMax) / yMax) * plotH;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    svg.appendChild(element("line", { class: "axis", x1: LEFT, x2: WIDTH - RIGHT, y1: y(v), y2: y(v) }));
    svg.appendChild(element("text", { x: LEFT - 6, y: y(v) + 4, "text-anchor": "end" }, label(v)));
  }
  for (const minutes of [60, 45, 30, 15, 0]) {
    const t = to - minutes * 60e6;
    svg.appendChild(element("text", { x: x(t), y: HEIGHT - 8, "text-anchor": "middle" }, minutes ? `-${minutes} min` : "now"));
  }
  series.forEach((line, n) => {
    const points = line.points.filter(([t]) => t >= from && t <= to);
    if (points.length === 0) return;
    const path = points.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.appendChild(element("path", { class: "series", d: path, stroke: line.colour, "data-series": line.name }));
    const [lastT, lastV] = points[points.length - 1];
    svg.appendChild(element("text", { x: Math.min(x(lastT) + 4, WIDTH - RIGHT - 40), y: y(lastV) - 6 - n * 2, fill: line.colour }, line.name));
  });
}

/** One horizontal bar per row ([{name, counts}]), stacked by agent state. */
export function drawStacks(svg, rows) {
  clear(svg);
  const most = Math.max(1, ...rows.map((row) => STATES.reduce((sum, s) => sum + (row.counts[s] || 0), 0)));
  const plotW = WIDTH - 120 - RIGHT;
  const bar = Math.min(36, (HEIGHT - TOP - BOTTOM) / Math.max(1, rows.length) - 8);
  rows.forEach((row, i) => {
    const top = TOP + i * (bar + 8);
    svg.appendChild(element("text", { x: 112, y: top + bar / 2 + 5, "text-anchor": "end" }, row.name));
    let left = 120;
    for (const state of STATES) {
      const count = row.counts[state] || 0;
      if (!count) continue;
      const width = (count / most) * plotW;
      svg.appendChild(element("rect", { x: left, y: top, width, height: bar, fill: STATE_COLOURS[state], "data-state": state }));
      if (width > 18) svg.appendChild(element("text", { x: left + width / 2, y: top + bar / 2 + 5, "text-anchor": "middle", fill: "#10141c" }, count));
      left += width;
    }
  });
  STATES.forEach((state, i) => {
    const x = 120 + i * 95;
    svg.appendChild(element("rect", { x, y: HEIGHT - 20, width: 12, height: 12, fill: STATE_COLOURS[state] }));
    svg.appendChild(element("text", { x: x + 16, y: HEIGHT - 10 }, state.replace("_", " ")));
  });
}

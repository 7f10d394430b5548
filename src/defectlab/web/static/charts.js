// Line charts drawn as inline SVG: loss curves per epoch and the precision-recall curve.
//
// Elements are built with createElementNS and text nodes only, like h() in common.js.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 420;
const HEIGHT = 220;
const MARGIN = { left: 52, right: 12, top: 10, bottom: 40 };
const COLOURS = { train: "#1f5fbf", dev: "#e04f16", background: "#1f5fbf", projection: "#7a5af8" };
const SPARE = ["#067647", "#b54708", "#c11574", "#344054"];

// Build an SVG element: attributes from `attrs`, then children (strings become text).
export function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// Return up to five round tick values from `low` to `high`.
function ticks(low, high) {
  if (!(high > low)) return [low];
  const raw = (high - low) / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= raw);
  const values = [];
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) values.push(Number(value.toPrecision(6)));
  return values;
}

// Draw series of [x, y] points on shared axes. `series` is [{name, label, points, colour, step}], where `step`
// draws a staircase (as precision-recall curves are); points with a null y leave a gap. `wholeX` keeps
// whole-number ticks on the x axis only, as epochs are.
export function lineChart(series, { xLabel, yLabel, xRange, yRange, id, title, wholeX = false }) {
  const all = series.flatMap((line) => line.points.filter(([, y]) => y !== null && Number.isFinite(y)));
  const [xLow, xHigh] = xRange || [Math.min(...all.map(([x]) => x)), Math.max(...all.map(([x]) => x))];
  const [yLow, yHigh] = yRange || [Math.min(0, ...all.map(([, y]) => y)), Math.max(...all.map(([, y]) => y))];
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (value) => MARGIN.left + (xHigh > xLow ? ((value - xLow) / (xHigh - xLow)) * plotWidth : plotWidth / 2);
  const y = (value) => MARGIN.top + plotHeight - (yHigh > yLow ? ((value - yLow) / (yHigh - yLow)) * plotHeight : plotHeight / 2);

  const grid = [];
  for (const value of ticks(yLow, yHigh)) {
    grid.push(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value), class: "grid" }));
    grid.push(svg("text", { x: MARGIN.left - 6, y: y(value) + 4, "text-anchor": "end" }, String(value)));
  }
  for (const value of ticks(xLow, xHigh).filter((tick) => !wholeX || Number.isInteger(tick))) {
    grid.push(svg("text", { x: x(value), y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle" }, String(value)));
  }
  const lines = series.map((line, index) => svg("path", {
    d: pathOf(line.points, x, y, line.step), fill: "none", "stroke-width": 2,
    stroke: line.colour || COLOURS[line.name] || SPARE[index % SPARE.length], "data-name": line.name,
  }, svg("title", {}, line.label || line.name)));
  const dots = series.flatMap((line, index) => (line.points.length === 1 && line.points[0][1] !== null
    ? [svg("circle", { cx: x(line.points[0][0]), cy: y(line.points[0][1]), r: 3, fill: line.colour || COLOURS[line.name] || SPARE[index % SPARE.length] })]
    : []));
  return svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, class: "chart", id, role: "img", "aria-label": title || yLabel },
    svg("title", {}, title || yLabel),
    ...grid,
    svg("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom, class: "axis" }),
    svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: HEIGHT - MARGIN.bottom, y2: HEIGHT - MARGIN.bottom, class: "axis" }),
    svg("text", { x: MARGIN.left + plotWidth / 2, y: HEIGHT - 6, "text-anchor": "middle", class: "axis-label" }, xLabel),
    svg("text", { x: 12, y: MARGIN.top + plotHeight / 2, "text-anchor": "middle", class: "axis-label",
      transform: `rotate(-90 12 ${MARGIN.top + plotHeight / 2})` }, yLabel),
    ...lines, ...dots);
}

function pathOf(points, x, y, step) {
  let d = "";
  let previous = null;
  for (const [px, py] of points) {
    if (py === null || !Number.isFinite(py)) { previous = null; continue; }
    if (previous === null) d += `M${x(px).toFixed(1)},${y(py).toFixed(1)}`;
    else if (step) d += `H${x(px).toFixed(1)}V${y(py).toFixed(1)}`;
    else d += `L${x(px).toFixed(1)},${y(py).toFixed(1)}`;
    previous = [px, py];
  }
  return d;
}

const CURVE_WORDS = {
  train: "train loss", dev: "dev loss",
  background: "train loss: background", projection: "train loss: boxes",
};

// Explain why a model of the task `task` has no loss curves.
export function noCurvesWords(task) {
  return task === "anomaly" ? "No loss curves: an anomaly model learns from good images in one pass, without epochs."
    : "No loss curves: this model was trained before loss curves were kept with models.";
}

// Draw loss curves ({name: [loss per epoch]}) with a legend; returns null when there are none.
export function lossChart(curves, id = "loss-chart") {
  const names = Object.keys(curves || {}).filter((name) => curves[name].length);
  if (!names.length) return null;
  const series = names.map((name) => ({ name, label: CURVE_WORDS[name] || `${name} loss`,
    points: curves[name].map((value, index) => [index + 1, value]) }));
  const epochs = Math.max(...names.map((name) => curves[name].length));
  return legendFigure(lineChart(series, { xLabel: "epoch", yLabel: "loss", xRange: [1, Math.max(2, epochs)], id, title: "Loss per epoch", wholeX: true }), series);
}

export function legendFigure(chart, series) {
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((line, index) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = line.colour || COLOURS[line.name] || SPARE[index % SPARE.length];
    item.append(swatch, document.createTextNode(line.label || line.name));
    legend.append(item);
  });
  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  figure.append(chart, legend);
  return figure;
}

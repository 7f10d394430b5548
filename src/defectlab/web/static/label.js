// The labeling page: an image in a deep-zoom viewer, the tools of the project's task, and the defect book beside it.
//
// The label is edited here and saved whole with the version it was loaded at. When someone else saved the
// image in between, the server responds with 409 and this page shows it: nothing of theirs is overwritten, and
// the person chooses to load their label.

import {
  ApiError, api, classColour, drawHeader, h, pageParts, projectPath, ruleWords, showError,
  showMessage, stateWords, thumbnailUrl,
} from "./common.js";
import { TileViewer } from "./viewer.js";

const TOOLS_BY_TASK = {
  classification: ["pan"],
  anomaly: ["pan"],
  detection: ["pan", "box"],
  segmentation: ["pan", "polygon", "brush", "eraser"],
};
const TOOL_WORDS = { pan: "Pan (V)", box: "Box (B)", polygon: "Polygon (P)", brush: "Brush (R)", eraser: "Eraser (E)" };
const TOOL_KEYS = { v: "pan", b: "box", p: "polygon", r: "brush", e: "eraser" };
// Masks are painted on a canvas of the image's size; larger images would cost the browser too much memory.
// NOTE: above this size a mask is shown and saved back as loaded but cannot be painted; painting one would
// need a canvas per tile of the mask.
const MAX_MASK_PIXELS = 4096 * 4096;
const HISTORY = 200;

const { project, rest } = pageParts();
const imageId = Number(rest[1]);
const filterQuery = location.search;

let info = null;          // the project: task and classes
let viewer = null;
let saved = null;         // the label as last loaded or saved, with its version
let label = { cls: null, regions: [] };
let tool = "pan";
let drawClass = null;     // the defect class new regions get
let draft = null;         // a box or polygon being drawn
let dirty = false;
const bookEntries = new Map();  // defect book entries by class, read once per page
const undoStack = [];
const redoStack = [];

// ---- the label and its history ----

function record(action) {
  undoStack.push(action);
  if (undoStack.length > HISTORY) undoStack.shift();
  redoStack.length = 0;
  changed();
}

// Replace the label with `next`, undoably.
function setLabel(next) {
  const before = label;
  label = next;
  record({ undo: () => { label = before; }, redo: () => { label = next; } });
}

function undo() {
  const action = undoStack.pop();
  if (!action) return;
  action.undo();
  redoStack.push(action);
  changed();
}

function redo() {
  const action = redoStack.pop();
  if (!action) return;
  action.redo();
  undoStack.push(action);
  changed();
}

function changed() {
  dirty = true;
  drawSide();
  viewer.redraw();
}

function addRegion(region) {
  setLabel({ cls: label.cls === "ok" ? null : label.cls, regions: [...label.regions, region] });
}

function labelState() {
  if (label.regions.length) return "defective";
  if (label.cls === null) return "not_labeled";
  return label.cls === "ok" ? "no_defect" : "defective";
}

// ---- masks ----

function maskEditable() {
  return saved.width * saved.height <= MAX_MASK_PIXELS;
}

function blankMask() {
  const canvas = document.createElement("canvas");
  canvas.width = saved.width;
  canvas.height = saved.height;
  return canvas;
}

// Turn a mask crop from the server into a region whose canvas has the image's size, painted in the class colour.
async function loadMask(region) {
  const crop = region.mask;
  const picture = new Image();
  picture.src = `data:image/png;base64,${crop.png}`;
  await picture.decode();
  const canvas = maskEditable() ? blankMask() : document.createElement("canvas");
  if (!maskEditable()) { canvas.width = crop.width; canvas.height = crop.height; }
  const ctx = canvas.getContext("2d");
  const [x, y] = maskEditable() ? [crop.x, crop.y] : [0, 0];
  ctx.drawImage(picture, x, y);
  const pixels = ctx.getImageData(x, y, crop.width, crop.height);
  const colour = hexColour(classColour(info.classes, region.class));
  for (let i = 0; i < pixels.data.length; i += 4) {
    const inside = pixels.data[i] > 0;
    pixels.data.set(inside ? [...colour, 255] : [0, 0, 0, 0], i);
  }
  ctx.putImageData(pixels, x, y);
  const offset = maskEditable() ? { x: 0, y: 0 } : { x: crop.x, y: crop.y };
  return { class: region.class, canvas, offset, bounds: { x0: crop.x, y0: crop.y, x1: crop.x + crop.width, y1: crop.y + crop.height } };
}

function hexColour(hex) {
  return [1, 3, 5].map((start) => parseInt(hex.slice(start, start + 2), 16));
}

// Find (or add, undoably) the mask region of the drawing class, for the brush to paint on.
function maskOfClass(name) {
  const found = label.regions.find((region) => region.canvas && region.class === name);
  if (found) return found;
  const region = { class: name, canvas: blankMask(), offset: { x: 0, y: 0 }, bounds: null };
  addRegion(region);
  return region;
}

// Paint (or erase) a line of circles of `radius` image pixels from `from` to `to` on the mask.
function paint(region, from, to, radius, erase) {
  const ctx = region.canvas.getContext("2d");
  ctx.globalCompositeOperation = erase ? "destination-out" : "source-over";
  ctx.fillStyle = classColour(info.classes, region.class);
  const steps = Math.max(1, Math.ceil(Math.hypot(to.x - from.x, to.y - from.y) / Math.max(0.5, radius / 2)));
  for (let step = 0; step <= steps; step += 1) {
    const x = from.x + ((to.x - from.x) * step) / steps;
    const y = from.y + ((to.y - from.y) * step) / steps;
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.globalCompositeOperation = "source-over";
  if (!erase) {
    const b = region.bounds || { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
    region.bounds = {
      x0: Math.max(0, Math.floor(Math.min(b.x0, from.x - radius, to.x - radius))),
      y0: Math.max(0, Math.floor(Math.min(b.y0, from.y - radius, to.y - radius))),
      x1: Math.min(saved.width, Math.ceil(Math.max(b.x1, from.x + radius, to.x + radius))),
      y1: Math.min(saved.height, Math.ceil(Math.max(b.y1, from.y + radius, to.y + radius))),
    };
  }
}

// Return the mask as the crop of its painted bounds, or null when nothing is left painted.
function maskCrop(region) {
  const b = region.bounds;
  if (!b || b.x1 <= b.x0 || b.y1 <= b.y0) return null;
  const width = b.x1 - b.x0;
  const height = b.y1 - b.y0;
  const crop = document.createElement("canvas");
  crop.width = width;
  crop.height = height;
  const ctx = crop.getContext("2d");
  ctx.drawImage(region.canvas, b.x0 - region.offset.x, b.y0 - region.offset.y, width, height, 0, 0, width, height);
  const alpha = ctx.getImageData(0, 0, width, height).data;
  let any = false;
  // The server counts a pixel from half opacity, as the soft edges of strokes are partly transparent.
  for (let i = 3; i < alpha.length && !any; i += 4) any = alpha[i] >= 128;
  if (!any) return null;
  return { x: b.x0, y: b.y0, png: crop.toDataURL("image/png") };
}

// ---- drawing on the canvas ----

function snap(point) {
  return { x: Math.min(saved.width, Math.max(0, Math.round(point.x))), y: Math.min(saved.height, Math.max(0, Math.round(point.y))) };
}

function drawOverlay(ctx, view) {
  for (const region of label.regions) drawRegion(ctx, view, region, classColour(info.classes, region.class));
  if (draft && draft.kind === "box") {
    drawBox(ctx, view, boxOf(draft.start, draft.end), classColour(info.classes, drawClass), true);
  }
  if (draft && draft.kind === "polygon") {
    const points = [...draft.points, draft.hover].filter(Boolean);
    drawPath(ctx, view, points, classColour(info.classes, drawClass), false);
  }
}

function drawRegion(ctx, view, region, colour) {
  if (region.box) drawBox(ctx, view, region.box, colour, false);
  if (region.polygon) {
    const points = [];
    for (let i = 0; i < region.polygon.length; i += 2) points.push({ x: region.polygon[i], y: region.polygon[i + 1] });
    drawPath(ctx, view, points, colour, true);
  }
  if (region.canvas) {
    ctx.save();
    ctx.globalAlpha = 0.45;
    ctx.imageSmoothingEnabled = false;
    const corner = view.toScreen(region.offset.x, region.offset.y);
    ctx.drawImage(region.canvas, corner.x, corner.y, region.canvas.width * view.scale, region.canvas.height * view.scale);
    ctx.restore();
  }
}

function boxOf(start, end) {
  return [Math.min(start.x, end.x), Math.min(start.y, end.y), Math.max(start.x, end.x), Math.max(start.y, end.y)];
}

function drawBox(ctx, view, box, colour, dashed) {
  const a = view.toScreen(box[0], box[1]);
  const b = view.toScreen(box[2], box[3]);
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  if (dashed) ctx.setLineDash([6, 4]);
  ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
  ctx.restore();
}

function drawPath(ctx, view, points, colour, closed) {
  if (!points.length) return;
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.fillStyle = `${colour}40`;
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((point, index) => {
    const p = view.toScreen(point.x, point.y);
    if (index) ctx.lineTo(p.x, p.y); else ctx.moveTo(p.x, p.y);
  });
  if (closed) { ctx.closePath(); ctx.fill(); }
  ctx.stroke();
  for (const point of points) {
    const p = view.toScreen(point.x, point.y);
    ctx.fillStyle = colour;
    ctx.fillRect(p.x - 3, p.y - 3, 6, 6);
  }
  ctx.restore();
}

function closePolygon() {
  if (!draft || draft.kind !== "polygon") return;
  const points = draft.points;
  draft = null;
  if (points.length < 3) { showMessage("A polygon needs at least 3 points.", "error"); viewer.redraw(); return; }
  addRegion({ class: drawClass, polygon: points.flatMap((p) => [p.x, p.y]) });
}

function attachPointer(canvas) {
  let drag = null;
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const point = viewer.eventPoint(event);
    viewer.zoomAt(Math.exp(-event.deltaY / 300), point.x, point.y);
  }, { passive: false });
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    const screen = viewer.eventPoint(event);
    const point = viewer.toImage(screen.x, screen.y);
    if (tool === "pan" || event.button === 1 || event.shiftKey) {
      drag = { kind: "pan", last: screen };
    } else if (tool === "box") {
      draft = { kind: "box", start: snap(point), end: snap(point) };
    } else if (tool === "polygon") {
      if (!draft) draft = { kind: "polygon", points: [] };
      draft.points.push(snap(point));
    } else if (tool === "brush" || tool === "eraser") {
      drag = startStroke(point, tool === "eraser");
    }
    viewer.redraw();
  });
  canvas.addEventListener("pointermove", (event) => {
    const screen = viewer.eventPoint(event);
    const point = viewer.toImage(screen.x, screen.y);
    document.querySelector("#position").textContent = `x ${Math.floor(point.x)}, y ${Math.floor(point.y)} · zoom ${viewer.scale.toFixed(2)}×`;
    if (drag && drag.kind === "pan") {
      viewer.panBy(screen.x - drag.last.x, screen.y - drag.last.y);
      drag.last = screen;
    } else if (drag && drag.kind === "stroke") {
      paint(drag.region, drag.last, point, brushRadius(), drag.erase);
      drag.last = point;
      viewer.redraw();
    } else if (draft && draft.kind === "box" && event.buttons) {
      draft.end = snap(point);
      viewer.redraw();
    } else if (draft && draft.kind === "polygon") {
      draft.hover = snap(point);
      viewer.redraw();
    }
  });
  canvas.addEventListener("pointerup", () => {
    if (drag && drag.kind === "stroke") finishStroke(drag);
    drag = null;
    if (draft && draft.kind === "box") {
      const box = boxOf(draft.start, draft.end);
      draft = null;
      if (box[2] > box[0] && box[3] > box[1]) addRegion({ class: drawClass, box });
      viewer.redraw();
    }
  });
  canvas.addEventListener("dblclick", () => closePolygon());
}

function brushRadius() {
  return Number(document.querySelector("#brush-size").value) / 2;
}

function startStroke(point, erase) {
  if (!maskEditable()) {
    showMessage(`Masks can be painted on images up to ${MAX_MASK_PIXELS} pixels; draw a polygon on this one.`, "error");
    return null;
  }
  const region = erase ? label.regions.find((r) => r.canvas && r.class === drawClass) : maskOfClass(drawClass);
  if (!region) return null;
  const before = region.canvas.getContext("2d").getImageData(0, 0, region.canvas.width, region.canvas.height);
  const stroke = { kind: "stroke", region, erase, last: point, before, boundsBefore: region.bounds };
  paint(region, point, point, brushRadius(), erase);
  return stroke;
}

function finishStroke(stroke) {
  const { region, before, boundsBefore } = stroke;
  const after = region.canvas.getContext("2d").getImageData(0, 0, region.canvas.width, region.canvas.height);
  const boundsAfter = region.bounds;
  record({
    undo: () => { region.canvas.getContext("2d").putImageData(before, 0, 0); region.bounds = boundsBefore; },
    redo: () => { region.canvas.getContext("2d").putImageData(after, 0, 0); region.bounds = boundsAfter; },
  });
}

// ---- saving, loading and moving ----

async function load() {
  const answer = await api("GET", projectPath(project, "images", String(imageId), "annotations"));
  saved = answer;  // loadMask reads the image size from it
  const regions = [];
  for (const region of answer.regions) regions.push(region.mask ? await loadMask(region) : region);
  label = { cls: answer.class, regions };
  undoStack.length = 0;
  redoStack.length = 0;
  dirty = false;
}

function regionBody(region) {
  if (region.canvas) {
    const mask = maskCrop(region);
    return mask && { class: region.class, mask };
  }
  return region.box ? { class: region.class, box: region.box } : { class: region.class, polygon: region.polygon };
}

// Save the label; return true when it was saved, false when the server rejected it (a conflict is shown).
async function save() {
  const regions = label.regions.map(regionBody).filter(Boolean);
  const body = { version: saved.version, class: label.cls, regions };
  try {
    const answer = await api("PUT", projectPath(project, "images", String(imageId), "annotations"), body);
    saved = { ...saved, ...answer };
    dirty = false;
    document.querySelector("#conflict").hidden = true;
    showMessage(`Saved: ${stateWords(answer.label)} (version ${answer.version}).`);
    drawSide();
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) showConflict(error.message);
    else showError(error);
    return false;
  }
}

function showConflict(message) {
  const box = document.querySelector("#conflict");
  box.replaceChildren(
    h("strong", {}, "Not saved: someone else saved this image after you opened it."),
    h("p", {}, message),
    h("p", {}, "Your changes are still shown here but are not stored. Load the saved label to see theirs, then redo your change if it is still needed."),
    h("button", { type: "button", id: "load-saved", onclick: async () => { await load(); box.hidden = true; drawSide(); viewer.redraw(); } }, "Load the saved label"));
  box.hidden = false;
}

async function move(direction) {
  const target = neighbours[direction];
  if (!target) return;
  if (dirty && !(await save())) return;
  location.assign(`/projects/${encodeURIComponent(project)}/images/${target}${filterQuery}`);
}

let neighbours = { previous: null, next: null };

// ---- the side panel ----

function drawSide() {
  const side = document.querySelector("#side");
  const defects = info.classes.filter((c) => c !== "ok");
  const classButtons = defects.map((name, index) => h("button", {
    type: "button", className: `class-button ${(info.task === "classification" || info.task === "anomaly" ? label.cls : drawClass) === name ? "chosen" : ""}`,
    style: `border-color: ${classColour(info.classes, name)}`, dataset: { class: name },
    onclick: () => chooseClass(name),
  }, index < 9 ? `${index + 1} ` : "", name));
  const state = labelState();
  side.replaceChildren(
    h("section", { className: "card" },
      h("div", { className: `state ${state}`, id: "label-state" }, { not_labeled: "Not labeled", no_defect: "No defect", defective: "Defective" }[state]),
      h("div", { className: "class-buttons" }, ...classButtons),
      h("div", { className: "row" },
        h("button", { type: "button", id: "no-defect", onclick: () => setLabel({ cls: "ok", regions: [] }) }, "No defect (N)"),
        h("button", { type: "button", id: "not-labeled", className: "secondary", onclick: () => setLabel({ cls: null, regions: [] }) }, "Clear: not labeled")),
      regionList(),
      h("div", { className: "row" },
        h("button", { type: "button", id: "save", className: "primary", onclick: () => save() }, dirty ? "Save (Ctrl+S)" : "Saved"),
        h("button", { type: "button", onclick: undo, disabled: !undoStack.length, title: "Ctrl+Z" }, "Undo"),
        h("button", { type: "button", onclick: redo, disabled: !redoStack.length, title: "Ctrl+Shift+Z" }, "Redo")),
      h("small", { className: "muted", id: "version" }, `Version ${saved.version}${dirty ? " · unsaved changes" : ""}`)),
    h("section", { className: "card", id: "book-entry" }, h("p", { className: "muted" }, "Choose a class to see its defect book entry.")),
    h("details", { className: "card" }, h("summary", {}, "Keyboard shortcuts"), shortcutList()));
  drawBookEntry();
}

function regionList() {
  if (!label.regions.length) return null;
  return h("ol", { className: "regions", id: "regions" }, ...label.regions.map((region, index) => h("li", {},
    h("span", { className: "swatch", style: `background: ${classColour(info.classes, region.class)}` }),
    `${region.class} · ${region.box ? `box ${region.box.map((v) => Math.round(v * 10) / 10).join(", ")}` : region.polygon ? `polygon of ${region.polygon.length / 2} points` : "mask"}`,
    h("button", {
      type: "button", className: "link", "aria-label": `remove region ${index + 1}`,
      onclick: () => setLabel({ cls: label.cls, regions: label.regions.filter((_, i) => i !== index) }),
    }, "remove"))));
}

function shortcutList() {
  const keys = [["1–9", "choose a class"], ["N", "no defect"], ["V B P R E", "pan, box, polygon, brush, eraser"],
    ["Enter or double-click", "close a polygon"], ["Esc", "drop the shape being drawn"], ["Ctrl+Z, Ctrl+Shift+Z", "undo, redo"],
    ["Ctrl+S", "save"], ["← →", "previous, next image (saves first)"], ["+ − 0", "zoom in, out, fit"],
    ["Shift+drag or middle button", "pan with any tool"]];
  return h("dl", {}, ...keys.flatMap(([key, words]) => [h("dt", {}, key), h("dd", {}, words)]));
}

function chooseClass(name) {
  drawClass = name;
  if (info.task === "classification" || info.task === "anomaly") setLabel({ cls: name, regions: [] });
  else drawSide();
}

async function drawBookEntry() {
  const imageLevel = info.task === "classification" || info.task === "anomaly";
  const name = imageLevel && label.cls && label.cls !== "ok" ? label.cls : drawClass;
  const box = document.querySelector("#book-entry");
  if (!name || !box) return;
  let entry;
  try {
    if (!bookEntries.has(name)) bookEntries.set(name, await api("GET", projectPath(project, "book", name)));
    entry = bookEntries.get(name);
  } catch (error) {
    box.replaceChildren(h("p", { className: "error" }, error.message));
    return;
  }
  const rule = ruleWords(entry.rule);
  const examples = entry.examples.map((example) => h("figure", { className: "example", dataset: { role: example.role } },
    h("img", { src: thumbnailUrl(project, example.image_id, 96), alt: example.path, width: 96, height: 96 }),
    h("figcaption", {}, `${example.role.replace("_", "-")}${example.note ? `: ${example.note}` : ""}`)));
  const link = (role, words) => h("button", { type: "button", className: "secondary", onclick: () => addExample(name, role) }, words);
  box.replaceChildren(...[
    h("h2", {}, `Defect book: ${name}`),
    h("p", { className: "definition" }, entry.definition || "No definition yet."),
    rule ? h("p", {}, h("strong", {}, "Decision rule: "), rule) : null,
    examples.length ? h("div", { className: "examples" }, ...examples) : null,
    h("p", {}, h("a", { href: `/projects/${encodeURIComponent(project)}/book#${encodeURIComponent(name)}` }, "Open the defect book")),
    h("div", { className: "row" }, h("small", {}, "Add this image as: "), link("example", "example"), link("counter_example", "counter-example"), link("borderline", "borderline")),
  ].filter(Boolean));
}

async function addExample(name, role) {
  try {
    await api("POST", projectPath(project, "book", name, "examples"), { image_id: imageId, role });
    showMessage(`Added this image to the defect book of ${name} as ${role.replace("_", "-")}.`);
    bookEntries.delete(name);
    drawBookEntry();
  } catch (error) {
    showError(error);
  }
}

// ---- the page ----

function chooseTool(name) {
  if (!TOOLS_BY_TASK[info.task].includes(name)) return;
  tool = name;
  draft = null;
  for (const button of document.querySelectorAll(".tool")) button.classList.toggle("chosen", button.dataset.tool === name);
  document.querySelector("#canvas").dataset.tool = name;
  viewer.redraw();
}

function onKey(event) {
  // Typing in a field is not a shortcut; a slider keeps them, so the brush size can be set between strokes.
  if (event.target.matches("input:not([type=range]), textarea, select")) return;
  const key = event.key.toLowerCase();
  const control = event.ctrlKey || event.metaKey;
  if (control && key === "z") { event.preventDefault(); event.shiftKey ? redo() : undo(); return; }
  if (control && key === "y") { event.preventDefault(); redo(); return; }
  if (control && key === "s") { event.preventDefault(); save(); return; }
  if (control) return;
  const defects = info.classes.filter((c) => c !== "ok");
  if (/^[1-9]$/.test(key) && defects[Number(key) - 1]) chooseClass(defects[Number(key) - 1]);
  else if (key === "n") setLabel({ cls: "ok", regions: [] });
  else if (TOOL_KEYS[key]) chooseTool(TOOL_KEYS[key]);
  else if (key === "enter") closePolygon();
  else if (key === "escape") { draft = null; viewer.redraw(); }
  else if (key === "+" || key === "=") viewer.zoomAt(1.5);
  else if (key === "-") viewer.zoomAt(1 / 1.5);
  else if (key === "0") viewer.fit();
  else if (key === "arrowleft") move("previous");
  else if (key === "arrowright") move("next");
}

function toolbar() {
  const tools = TOOLS_BY_TASK[info.task].map((name) => h("button", {
    type: "button", className: `tool ${name === tool ? "chosen" : ""}`, dataset: { tool: name }, onclick: () => chooseTool(name),
  }, TOOL_WORDS[name]));
  const slider = (id, words, min, max, step, value, oninput) => h("label", {}, words,
    h("input", { type: "range", id, min, max, step, value, oninput }));
  return h("div", { className: "toolbar" },
    h("button", { type: "button", id: "previous", disabled: !neighbours.previous, onclick: () => move("previous") }, "← Previous"),
    h("button", { type: "button", id: "next", disabled: !neighbours.next, onclick: () => move("next") }, "Next →"),
    h("span", { className: "muted" }, neighbours.position ? `${neighbours.position} of ${neighbours.total}` : ""),
    ...tools,
    TOOLS_BY_TASK[info.task].includes("brush") ? slider("brush-size", "Brush ", 1, 64, 1, 8, null) : null,
    h("button", { type: "button", onclick: () => viewer.fit(), title: "0" }, "Fit"),
    h("button", { type: "button", id: "actual-size", onclick: () => viewer.zoomAt(1 / viewer.scale) }, "1:1"),
    slider("brightness", "Brightness ", 0.2, 3, 0.05, 1, (event) => { viewer.brightness = Number(event.target.value); viewer.redraw(); }),
    slider("contrast", "Contrast ", 0.2, 4, 0.05, 1, (event) => { viewer.contrast = Number(event.target.value); viewer.redraw(); }),
    h("span", { className: "muted", id: "position" }));
}

async function start() {
  drawHeader(project, "label");
  const imagePath = projectPath(project, "images", String(imageId));
  const [project_, tiles, nearby] = await Promise.all([
    api("GET", projectPath(project)), api("GET", `${imagePath}/tiles`),
    api("GET", `${imagePath}/neighbours${filterQuery}`)]);
  info = project_;
  neighbours = nearby;
  drawClass = info.classes.find((c) => c !== "ok") || null;
  await load();
  const canvas = h("canvas", { id: "canvas", dataset: { tool } });
  document.querySelector("#app").replaceChildren(
    h("h1", {}, saved.path, h("small", { className: "muted" }, ` · ${saved.width}×${saved.height} · ${info.task}`)),
    toolbar(),
    h("div", { id: "conflict", className: "conflict", role: "alert", hidden: true }),
    h("div", { className: "labeling" }, h("div", { className: "stage" }, canvas), h("aside", { id: "side" })));
  viewer = new TileViewer(canvas, tiles, (level, column, row) => `/api${imagePath}/tiles/${level}/${column}/${row}.png`);
  viewer.overlays.push(drawOverlay);
  window.defectlabViewer = viewer;
  attachPointer(canvas);
  document.addEventListener("keydown", onKey);
  window.addEventListener("beforeunload", (event) => { if (dirty) event.preventDefault(); });
  drawSide();
}

start().catch(showError);

// The data browser: a page of thumbnails with filters, sorting and paging, and changes to a selection.
//
// Filters, sort and page live in the address, so a reload or a shared link
// shows the same page, and the labeling page's next and previous follow them.

import {
  api, drawHeader, h, pageParts, projectPath, showError, showMessage, stateWords, thumbnailUrl,
} from "./common.js";
import { uploadCard } from "./upload.js";

const FILTERS = ["label", "split", "labeled", "labeler", "key", "value", "excluded", "sort", "page", "page_size"];
const SORTS = [["path", "Path A–Z"], ["-path", "Path Z–A"], ["id", "Oldest import first"], ["-id", "Newest import first"],
  ["label", "Label"], ["-label", "Label, reversed"], ["split", "Split"]];

const { project } = pageParts();
const selected = new Set();
let projectInfo = null;
let metadata = {};
let labelers = [];
let lastPage = null;

function readFilters() {
  const query = new URLSearchParams(location.search);
  const filters = {};
  for (const name of FILTERS) if (query.get(name)) filters[name] = query.get(name);
  return filters;
}

function writeFilters(filters) {
  const query = new URLSearchParams();
  for (const name of FILTERS) if (filters[name]) query.set(name, filters[name]);
  history.replaceState(null, "", `${location.pathname}${query.size ? `?${query}` : ""}`);
}

function select(name, value, options, onchange) {
  return h("select", { name, "aria-label": name, onchange },
    ...options.map(([optionValue, words]) => h("option", { value: optionValue, selected: optionValue === (value || "") }, words)));
}

function filterBar(filters) {
  const change = (name) => (event) => {
    const next = { ...readFilters(), [name]: event.target.value, page: "" };
    if (name === "key") next.value = "";
    writeFilters(next);
    drawPage().catch(showError);
  };
  const classes = projectInfo.classes.map((c) => [c, c === "ok" ? "ok (no defect)" : c]);
  const keys = Object.keys(metadata);
  const values = filters.key ? (metadata[filters.key] || []) : [];
  return h("div", { className: "filters", id: "filters" },
    h("label", {}, "Class ", select("label", filters.label, [["", "any"], ...classes], change("label"))),
    h("label", {}, "Labeled ", select("labeled", filters.labeled,
      [["", "any"], ["true", "labeled"], ["false", "not labeled"]], change("labeled"))),
    labelers.length ? h("label", {}, "Labeler ", select("labeler", filters.labeler,
      [["", "anyone"], ...labelers.map((name) => [name, name])], change("labeler"))) : null,
    h("label", {}, "Split ", select("split", filters.split,
      [["", "any"], ["train", "train"], ["dev", "dev"], ["test", "test"], ["none", "none yet"]], change("split"))),
    keys.length ? h("label", {}, "Metadata ", select("key", filters.key, [["", "any key"], ...keys.map((k) => [k, k])], change("key"))) : null,
    filters.key ? h("label", {}, "= ", select("value", filters.value, [["", "any value"], ...values.map((v) => [v, v])], change("value"))) : null,
    h("label", {}, "Shown ", select("excluded", filters.excluded,
      [["", "all"], ["false", "included"], ["true", "excluded"]], change("excluded"))),
    h("label", {}, "Sort ", select("sort", filters.sort || "path", SORTS, change("sort"))));
}

function card(image, filters) {
  const query = new URLSearchParams(filters);
  query.delete("page");
  query.delete("page_size");
  const href = `/projects/${encodeURIComponent(project)}/images/${image.id}${query.size ? `?${query}` : ""}`;
  const box = h("input", {
    type: "checkbox", "aria-label": `select ${image.path}`, checked: selected.has(image.id),
    onchange: (event) => { event.target.checked ? selected.add(image.id) : selected.delete(image.id); drawSelection(); },
  });
  let label = "defect";
  if (image.label === null) label = "unlabeled";
  else if (image.label === "ok") label = "no-defect";
  return h("figure", { className: `thumb ${image.excluded ? "excluded" : ""}`, dataset: { id: image.id } },
    box,
    h("a", { href }, h("img", {
      src: thumbnailUrl(project, image.id), alt: image.path, loading: "lazy", width: 160, height: 160,
    })),
    h("figcaption", {},
      h("span", { className: "path", title: image.path }, image.path),
      h("span", { className: `chip ${label}` }, stateWords(image.label)),
      image.split ? h("span", { className: "chip split" }, image.split) : null,
      image.excluded ? h("span", { className: "chip excluded" }, "excluded") : null));
}

function pager(result) {
  const go = (page) => () => { writeFilters({ ...readFilters(), page: String(page) }); drawPage().catch(showError); };
  return h("div", { className: "pager" },
    h("button", { type: "button", disabled: result.page <= 1, onclick: go(result.page - 1) }, "← Previous page"),
    h("span", { id: "page-info" }, `Page ${result.page} of ${result.pages} · ${result.total} images`),
    h("button", { type: "button", disabled: result.page >= result.pages, onclick: go(result.page + 1) }, "Next page →"));
}

function bulkBar() {
  const split = select("bulk-split", "", [["", "choose"], ["train", "train"], ["dev", "dev"], ["test", "test"], ["none", "none"]]);
  const classChoice = select("bulk-class", "", [["", "choose"], ...projectInfo.classes.map((c) => [c, c === "ok" ? "ok (no defect)" : c])]);
  // valueOf returns the value to send, or throws when the person has not chosen one yet.
  const run = (action, valueOf) => async () => {
    if (!selected.size) { showMessage("Select images first with their check boxes.", "error"); return; }
    let value;
    try { value = valueOf(); } catch (error) { showMessage(error.message, "error"); return; }
    try {
      const result = await api("POST", projectPath(project, "images", "bulk"), {
        image_ids: [...selected], action, value,
      });
      showMessage(`${result.changed} of ${selected.size} images changed.`);
      selected.clear();
      await drawPage();
    } catch (error) {
      showError(error);
    }
  };
  const chosen = (control) => () => {
    if (!control.value) throw new Error(`Choose a ${control.name.replace("bulk-", "")} first.`);
    return control.value === "none" ? null : control.value;
  };
  return h("div", { className: "bulk card", id: "bulk" },
    h("span", { id: "selection" }),
    h("button", { type: "button", className: "link", onclick: selectPage }, "Select page"),
    h("button", { type: "button", className: "link", onclick: () => { selected.clear(); drawPage().catch(showError); } }, "Clear"),
    h("label", {}, "Split ", split, h("button", { type: "button", onclick: run("set_split", chosen(split)) }, "Set split")),
    h("label", {}, "Class ", classChoice, h("button", { type: "button", onclick: run("set_class", chosen(classChoice)) }, "Set class")),
    h("button", { type: "button", onclick: run("exclude", () => null) }, "Exclude from training"),
    h("button", { type: "button", onclick: run("include", () => null) }, "Include again"));
}

function selectPage() {
  for (const image of lastPage.images) selected.add(image.id);
  for (const box of document.querySelectorAll(".thumb input[type=checkbox]")) box.checked = true;
  drawSelection();
}

function drawSelection() {
  const words = document.querySelector("#selection");
  if (words) words.textContent = `${selected.size} selected`;
}

let drawn = 0;

async function drawPage() {
  const filters = readFilters();
  const query = new URLSearchParams(filters);
  if (!query.get("page_size")) query.set("page_size", "60");
  // A page requested earlier may arrive after a later one; only the newest request is drawn.
  const request = ++drawn;
  const result = await api("GET", `${projectPath(project, "browse")}?${query}`);
  if (request !== drawn) return;
  lastPage = result;
  const grid = result.images.length
    ? h("div", { className: "grid", id: "grid" }, ...result.images.map((image) => card(image, filters)))
    : h("p", { className: "muted", id: "grid" }, projectInfo.images
      ? "No image passes these filters." : "This project has no images yet. Add them above, or with 'defectlab import'.");
  const upload = document.querySelector("#upload") || uploadCard(project, () => refresh().catch(showError));
  upload.open = !projectInfo.images;
  document.querySelector("#app").replaceChildren(
    h("h1", {}, `Images of ${project}`, h("small", { className: "muted" }, ` · ${projectInfo.task} · `),
      h("a", { href: `/projects/${encodeURIComponent(project)}/review`, id: "review-link" }, "Review proposals")),
    upload, filterBar(filters), bulkBar(), pager(result), grid, pager(result));
  drawSelection();
}

// Read the project and its filter values again, after an upload added images.
async function refresh() {
  [projectInfo, metadata, labelers] = await Promise.all([
    api("GET", projectPath(project)), api("GET", projectPath(project, "metadata")),
    api("GET", projectPath(project, "labelers"))]);
  await drawPage();
  document.querySelector("#upload").open = true;
}

async function start() {
  drawHeader(project, "browser");
  [projectInfo, metadata, labelers] = await Promise.all([
    api("GET", projectPath(project)), api("GET", projectPath(project, "metadata")),
    api("GET", projectPath(project, "labelers"))]);
  await drawPage();
}

start().catch(showError);

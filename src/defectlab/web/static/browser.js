// The data browser: a page of thumbnails with filters, sorting and paging, and changes to a selection.
//
// Filters, sort and page live in the address, so a reload or a shared link
// shows the same page, and the labeling page's next and previous follow them.

import {
  api, drawHeader, h, pageParts, projectPath, showError, showMessage, stateWords, thumbnailUrl,
} from "./common.js";
import { uploadCard } from "./upload.js";

const FILTERS = ["label", "split", "labeled", "labeler", "key", "value", "excluded", "tag", "model", "outcome",
  "score_min", "score_max", "sort", "page", "page_size"];
const OUTCOMES = [["", "any"], ["escape", "escape (defective called OK)"], ["overkill", "overkill (good called defective)"],
  ["wrong_class", "wrong class"], ["correct", "correct"]];
const SORTS = [["path", "Path A–Z"], ["-path", "Path Z–A"], ["id", "Oldest import first"], ["-id", "Newest import first"],
  ["label", "Label"], ["-label", "Label, reversed"], ["split", "Split"]];

const { project } = pageParts();
const selected = new Set();
let projectInfo = null;
let metadata = {};
let labelers = [];
let tags = [];
let models = [];
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
    if (name === "model" && !event.target.value) Object.assign(next, { outcome: "", score_min: "", score_max: "" });
    writeFilters(next);
    drawPage().catch(showError);
  };
  const score = (name, words) => h("label", {}, `${words} `, h("input", {
    type: "number", name, "aria-label": name, min: 0, max: 1, step: "any", value: filters[name] || "", className: "score",
    onchange: change(name) }));
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
    tags.length ? h("label", {}, "Tag ", select("tag", filters.tag, [["", "any"], ...tags.map((t) => [t, t])], change("tag"))) : null,
    models.length ? h("label", {}, "Evaluated by ", select("model", filters.model,
      [["", "no model"], ...models.map((m) => [String(m.id), `model ${m.id}`])], change("model"))) : null,
    filters.model ? h("label", {}, "Outcome ", select("outcome", filters.outcome, OUTCOMES, change("outcome"))) : null,
    filters.model ? score("score_min", "Score from") : null,
    filters.model ? score("score_max", "to") : null,
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
      image.excluded ? h("span", { className: "chip excluded" }, "excluded") : null,
      image.prediction ? h("span", { className: `chip ${image.prediction.outcome === "correct" ? "no-defect" : "defect"} outcome` },
        `${image.prediction.outcome.replace("_", " ")} · predicted ${image.prediction.predicted} · score ${image.prediction.score.toFixed(3)}`) : null,
      ...(image.tags || []).map((tag) => h("span", { className: "chip tag" }, `# ${tag}`))));
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
      if (action.endsWith("_tag")) tags = await api("GET", projectPath(project, "tags"));
      await drawPage();
    } catch (error) {
      showError(error);
    }
  };
  const chosen = (control) => () => {
    if (!control.value) throw new Error(`Choose a ${control.name.replace("bulk-", "")} first.`);
    return control.value === "none" ? null : control.value;
  };
  const tagInput = h("input", { type: "text", name: "bulk-tag", "aria-label": "tag", maxlength: 100, placeholder: "such as recheck", list: "known-tags" });
  const typed = () => {
    if (!tagInput.value.trim()) throw new Error("Type a tag first.");
    return tagInput.value.trim();
  };
  return h("div", { className: "bulk card", id: "bulk" },
    h("span", { id: "selection" }),
    h("button", { type: "button", className: "link", onclick: selectPage }, "Select page"),
    h("button", { type: "button", className: "link", onclick: () => { selected.clear(); drawPage().catch(showError); } }, "Clear"),
    h("label", {}, "Split ", split, h("button", { type: "button", onclick: run("set_split", chosen(split)) }, "Set split")),
    h("label", {}, "Class ", classChoice, h("button", { type: "button", onclick: run("set_class", chosen(classChoice)) }, "Set class")),
    h("button", { type: "button", onclick: run("exclude", () => null) }, "Exclude from training"),
    h("button", { type: "button", onclick: run("include", () => null) }, "Include again"),
    h("label", {}, "Tag ", tagInput, h("datalist", { id: "known-tags" }, ...tags.map((tag) => h("option", { value: tag }))),
      h("button", { type: "button", id: "add-tag", onclick: run("add_tag", typed) }, "Add tag"),
      h("button", { type: "button", id: "remove-tag", onclick: run("remove_tag", typed) }, "Remove tag")));
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

// Read the project and the values its filters offer: metadata, labelers, tags, and the models whose evaluation
// on a report page finished (the outcome filter reads that evaluation's images).
async function readProject() {
  let jobs;
  [projectInfo, metadata, labelers, tags, jobs] = await Promise.all([
    api("GET", projectPath(project)), api("GET", projectPath(project, "metadata")),
    api("GET", projectPath(project, "labelers")), api("GET", projectPath(project, "tags")),
    api("GET", `/jobs?project=${encodeURIComponent(project)}`)]);
  const evaluated = jobs.filter((job) => job.kind === "evaluate" && job.status === "succeeded").map((job) => job.options.model_id);
  models = [...new Set(evaluated)].sort((a, b) => a - b).map((id) => ({ id }));
}

// Read the project and its filter values again, after an upload added images.
async function refresh() {
  await readProject();
  await drawPage();
  document.querySelector("#upload").open = true;
}

async function start() {
  drawHeader(project, "browser");
  await readProject();
  await drawPage();
}

start().catch(showError);

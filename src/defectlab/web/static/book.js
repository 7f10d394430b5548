// The defect book page: each class's definition, decision rule and example images, its versions, and a print view.
//
// An edit carries the entry version it was made on; when someone saved the entry in between, the server
// responds with 409, and the page says so and keeps the text typed here so nothing is lost.

import {
  ApiError, api, drawHeader, h, pageParts, projectPath, ruleWords, showError, showMessage, thumbnailUrl,
} from "./common.js";

const ROLES = [["example", "Example"], ["counter_example", "Counter-example"], ["borderline", "Borderline"]];

const { project } = pageParts();
let book = [];

function chosenClass() {
  const wanted = decodeURIComponent(location.hash.slice(1));
  return book.some((entry) => entry.class === wanted) ? wanted : (book.find((e) => e.class !== "ok") || book[0]).class;
}

function classList(current) {
  return h("nav", { className: "book-classes card" }, h("h2", {}, "Classes"),
    h("ul", {}, ...book.map((entry) => h("li", {},
      h("a", { href: `#${encodeURIComponent(entry.class)}`, className: entry.class === current ? "current" : "" },
        entry.class === "ok" ? "ok (no defect)" : entry.class),
      h("small", { className: "muted" }, entry.version ? ` v${entry.version}` : " not described")))),
    h("button", { type: "button", id: "print", onclick: () => window.print() }, "Print one page per class"));
}

function numberField(name, value, words) {
  return h("label", {}, words, h("input", { type: "number", name, min: 0, step: "any", value: value ?? "" }));
}

function editor(entry) {
  const definition = h("textarea", { name: "definition", rows: 5, cols: 60 }, entry.definition);
  const rule = entry.rule || {};
  const unit = h("select", { name: "unit" }, ...["px", "mm"].map((u) => h("option", { value: u, selected: (rule.unit || "px") === u }, u)));
  const form = h("form", { id: "entry-form", className: "card" },
    h("h2", {}, `${entry.class}`, h("small", { className: "muted" }, entry.version ? ` · version ${entry.version} by ${entry.author}, ${entry.created_at.slice(0, 16).replace("T", " ")}` : " · not described yet")),
    h("label", { className: "block" }, "Definition: what the defect is, in words", definition),
    h("fieldset", {}, h("legend", {}, "Decision rule: when a region of this class makes a part defective"),
      numberField("min_length", rule.min_length, "Minimum length of the longest side "),
      numberField("min_area", rule.min_area, "Minimum area "),
      h("label", {}, "Unit ", unit),
      numberField("pixel_size_mm", rule.pixel_size_mm, "Millimetres per pixel ")),
    h("button", { type: "submit", className: "primary" }, "Save entry"),
    h("div", { id: "entry-conflict", className: "conflict", role: "alert", hidden: true }));
  form.addEventListener("submit", (event) => { event.preventDefault(); saveEntry(entry, form); });
  return form;
}

async function saveEntry(entry, form) {
  const field = (name) => form.elements[name].value.trim();
  const number = (name) => (field(name) === "" ? null : Number(field(name)));
  const rule = { min_length: number("min_length"), min_area: number("min_area"), unit: field("unit"), pixel_size_mm: number("pixel_size_mm") };
  const body = { based_on: entry.version, definition: form.elements.definition.value };
  // An entry without a rule keeps none until a size is typed; the unit alone is no rule.
  const sizes = [rule.min_length, rule.min_area, rule.pixel_size_mm].some((value) => value !== null);
  if (sizes || Object.keys(entry.rule || {}).length) body.rule = rule;
  try {
    const saved = await api("PATCH", projectPath(project, "book", entry.class), body);
    showMessage(`Saved version ${saved.version} of ${entry.class}.`);
    await draw();
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      const box = form.querySelector("#entry-conflict");
      box.replaceChildren(h("strong", {}, "Not saved: someone else changed this entry after you opened it. "),
        h("span", {}, error.message), h("p", {}, "Your text is still in the form. Copy what you need, then load their version."),
        h("button", { type: "button", onclick: () => draw() }, "Load the newest version"));
      box.hidden = false;
    } else {
      showError(error);
    }
  }
}

function exampleFigure(example, className, removable) {
  const href = `/projects/${encodeURIComponent(project)}/images/${example.image_id}`;
  return h("figure", { className: "example", dataset: { role: example.role } },
    h("a", { href }, h("img", { src: thumbnailUrl(project, example.image_id, 160), alt: example.path, width: 160, height: 160 })),
    h("figcaption", {}, example.path, example.note ? h("em", {}, ` ${example.note}`) : null,
      removable ? h("button", { type: "button", className: "link", onclick: () => removeExample(className, example) }, " remove") : null));
}

function examples(entry) {
  const groups = ROLES.map(([role, words]) => {
    const linked = entry.examples.filter((example) => example.role === role);
    return h("div", { className: "role-group", dataset: { role } }, h("h3", {}, `${words}s`),
      linked.length ? h("div", { className: "examples" }, ...linked.map((e) => exampleFigure(e, entry.class, true)))
        : h("p", { className: "muted" }, "None yet."));
  });
  const imageField = h("input", { type: "number", name: "image_id", min: 1, required: true, size: 6 });
  const role = h("select", { name: "role" }, ...ROLES.map(([value, words]) => h("option", { value }, words)));
  const note = h("input", { name: "note", placeholder: "what to look at", size: 30 });
  const form = h("form", { id: "add-example", className: "row" }, "Link image id ", imageField, " as ", role, note,
    h("button", { type: "submit" }, "Link image"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", projectPath(project, "book", entry.class, "examples"),
        { image_id: Number(imageField.value), role: role.value, note: note.value || null });
      await draw();
    } catch (error) {
      showError(error);
    }
  });
  return h("section", { className: "card" }, h("h2", {}, "Images"), ...groups,
    h("p", { className: "muted" }, "Or open an image in the labeling page and link it from the defect book panel there."), form);
}

async function removeExample(className, example) {
  try {
    await api("DELETE", projectPath(project, "book", className, "examples", String(example.image_id)));
    await draw();
  } catch (error) {
    showError(error);
  }
}

async function historyList(entry) {
  const versions = await api("GET", projectPath(project, "book", entry.class, "history"));
  const shown = h("div", { id: "old-version" });
  const view = async (version) => {
    const old = await api("GET", `${projectPath(project, "book", entry.class)}?version=${version}`);
    shown.replaceChildren(h("div", { className: "old card" }, h("h3", {}, `Version ${old.version} as it was`),
      h("p", {}, old.definition || "No definition."), h("p", {}, ruleWords(old.rule) || "No decision rule."),
      h("p", {}, `${old.examples.length} linked images: ${old.examples.map((e) => `${e.path} (${e.role.replace("_", "-")})`).join(", ") || "none"}`)));
  };
  const rows = [...versions].reverse().map((version) => h("tr", {},
    h("td", {}, version.version), h("td", {}, version.author), h("td", {}, version.created_at.slice(0, 19).replace("T", " ")),
    h("td", {}, version.change),
    h("td", {}, h("button", { type: "button", className: "link", onclick: () => view(version.version).catch(showError) }, "view"))));
  return h("section", { className: "card", id: "history" }, h("h2", {}, "Versions"),
    rows.length ? h("table", { className: "list" }, h("thead", {}, h("tr", {}, ...["Version", "By", "When (UTC)", "What changed", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...rows)) : h("p", { className: "muted" }, "No version yet."), shown);
}

// One printed page per class for the inspection station: definition, rule and the linked images.
function printView() {
  return h("div", { id: "print-view" }, ...book.map((entry) => h("article", { className: "print-entry" },
    h("h1", {}, `${project}: ${entry.class === "ok" ? "ok (no defect)" : entry.class}`),
    h("p", { className: "definition" }, entry.definition || "No definition yet."),
    h("p", {}, h("strong", {}, "Decision rule: "), ruleWords(entry.rule) || "none"),
    ...ROLES.map(([role, words]) => {
      const linked = entry.examples.filter((e) => e.role === role);
      return linked.length ? h("div", {}, h("h2", {}, `${words}s`),
        h("div", { className: "examples" }, ...linked.map((e) => exampleFigure(e, entry.class, false)))) : null;
    }),
    h("p", { className: "muted" }, entry.version ? `Version ${entry.version}, ${entry.created_at.slice(0, 10)}, by ${entry.author}` : "Not described yet"))));
}

async function draw() {
  book = await api("GET", projectPath(project, "book"));
  const current = chosenClass();
  const entry = await api("GET", projectPath(project, "book", current));
  document.querySelector("#app").replaceChildren(
    h("div", { className: "screen" }, h("h1", {}, `Defect book of ${project}`),
      h("div", { className: "book-layout" }, classList(current),
        h("div", { className: "book-main" }, editor(entry), examples(entry), await historyList(entry)))),
    printView());
}

drawHeader(project, "book");
window.addEventListener("hashchange", () => draw().catch(showError));
draw().catch(showError);

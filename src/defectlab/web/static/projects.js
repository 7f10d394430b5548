// The projects page: every project of the workspace with its counts, and a form to create one.

import { api, drawHeader, h, showError, showMessage } from "./common.js";

const TASKS = [
  ["classification", "Classification: one class per image"],
  ["anomaly", "Anomaly: trained on good images only"],
  ["detection", "Detection: boxes around defects"],
  ["segmentation", "Segmentation: outlines and masks of defects"],
];

async function draw() {
  drawHeader(null, "projects");
  const projects = await api("GET", "/projects");
  document.querySelector("#app").replaceChildren(
    h("h1", {}, "Projects"),
    projects.length ? projectTable(projects) : h("p", { className: "muted" }, "No project yet. Create the first one below."),
    createForm(),
  );
}

function projectTable(projects) {
  const rows = projects.map((project) => {
    const base = `/projects/${encodeURIComponent(project.name)}`;
    return h("tr", {},
      h("td", {}, h("a", { href: base }, project.name)),
      h("td", {}, project.task),
      h("td", { className: "number" }, project.images),
      h("td", { className: "number" }, project.labeled),
      h("td", { className: "number" }, project.models),
      h("td", {}, project.classes.filter((c) => c !== "ok").join(", ") || "—"),
      h("td", {}, h("a", { href: `${base}/book` }, "Defect book")));
  });
  return h("table", { className: "list", id: "projects" },
    h("thead", {}, h("tr", {}, ...["Project", "Task", "Images", "Labeled", "Models", "Defect classes", ""]
      .map((title) => h("th", {}, title)))),
    h("tbody", {}, ...rows));
}

function createForm() {
  const name = h("input", { name: "name", required: true, maxlength: 200, placeholder: "for example: bottle caps" });
  const task = h("select", { name: "task" }, ...TASKS.map(([value, words]) => h("option", { value }, words)));
  const classes = h("input", { name: "classes", placeholder: "scratch, dent, stain", size: 40 });
  const form = h("form", { id: "create-project", className: "card" },
    h("h2", {}, "New project"),
    h("label", {}, "Name ", name),
    h("label", {}, "Task ", task),
    h("label", {}, "Defect classes ", classes,
      h("small", { className: "muted" }, " separated by commas; 'ok' (no defect) is always there")),
    h("button", { type: "submit" }, "Create project"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: name.value.trim(), task: task.value,
      classes: classes.value.split(",").map((c) => c.trim()).filter(Boolean),
    };
    try {
      await api("POST", "/projects", body);
      showMessage(`Created project ${body.name}.`);
      location.assign(`/projects/${encodeURIComponent(body.name)}`);
    } catch (error) {
      showError(error);
    }
  });
  return form;
}

draw().catch(showError);

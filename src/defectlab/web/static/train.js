// The training page: one button that trains with the auto-tuner's settings, live progress, and the models.
//
// Training runs as a job in a worker process, so the page only reads the job: a reload, or another
// person's browser, shows the same progress.

import { lossChart, noCurvesWords } from "./charts.js";
import { api, diagnosisList, drawHeader, h, pageParts, projectPath, showError, showMessage } from "./common.js";

const POLL_MS = 1000;
const { project } = pageParts();
let polling = null;

function progressBar(job) {
  const progress = job.progress;
  if (!progress) return h("p", { className: "muted" }, "Starting…");
  return h("div", { className: "progress" },
    h("progress", { value: progress.done, max: Math.max(1, progress.total) }),
    h("span", {}, ` ${progress.message} · ${progress.done} of ${progress.total} · ${Math.round(progress.seconds)} s`));
}

function settingsList(settings) {
  return h("dl", {}, ...Object.entries(settings || {}).flatMap(([key, value]) => [
    h("dt", {}, key.replaceAll("_", " ")),
    h("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value))]));
}

function countsTable(counts) {
  const splits = Object.keys(counts || {});
  const classes = [...new Set(splits.flatMap((split) => Object.keys(counts[split])))];
  return h("table", { className: "list" },
    h("thead", {}, h("tr", {}, h("th", {}, "Class"), ...splits.map((split) => h("th", {}, split)))),
    h("tbody", {}, ...classes.map((name) => h("tr", {}, h("td", {}, name),
      ...splits.map((split) => h("td", { className: "number" }, counts[split][name] ?? 0))))));
}

async function jobCard(job) {
  const heading = h("h3", {}, `Training job ${job.id} · ${job.status}`,
    h("small", { className: "muted" }, ` · started ${job.started_at.replace("T", " ").slice(0, 19)} UTC`));
  if (job.status === "running") {
    return h("div", { className: "card job running", dataset: { id: job.id } }, heading, progressBar(job),
      lossChart(job.progress && job.progress.loss_curves, `loss-chart-${job.id}`));
  }
  if (job.status === "failed") {
    return h("div", { className: "card job failed", dataset: { id: job.id } }, heading, h("p", { className: "error" }, job.error));
  }
  const full = await api("GET", `/jobs/${job.id}`);
  const result = full.result;
  return h("div", { className: "card job succeeded", dataset: { id: job.id } }, heading,
    h("p", {}, `Model ${result.model_id} trained in ${Math.round(result.seconds)} s; threshold ${Number(result.threshold).toFixed(3)}. `,
      h("a", { href: `/projects/${encodeURIComponent(project)}/models/${result.model_id}` }, "Open its report")),
    h("h4", {}, "Diagnosis"), diagnosisList(project, result.diagnosis, `diagnosis-${job.id}`, result.diagnosis_error),
    lossSection(result, job.id),
    h("h4", {}, "Images per split"), countsTable(result.counts),
    h("details", {}, h("summary", {}, "Settings the auto-tuner chose"), settingsList(result.settings)));
}

function lossSection(result, jobId) {
  const chart = lossChart(result.loss_curves, `loss-chart-${jobId}`);
  if (!chart) return h("p", { className: "muted" }, noCurvesWords(result.task));
  return h("div", {}, h("h4", {}, "Loss per epoch"), chart,
    h("small", { className: "muted" }, "Lower is better. Train loss should fall; dev loss, measured on images the model does not learn from, "
      + "should fall with it. Dev loss that rises while train loss falls means the model learns the training images by heart."));
}

async function draw() {
  const [jobs, models] = await Promise.all([
    api("GET", `/jobs?project=${encodeURIComponent(project)}`), api("GET", projectPath(project, "models"))]);
  const training = jobs.filter((job) => job.kind === "train");
  const running = training.some((job) => job.status === "running");
  const cards = await Promise.all(training.map(jobCard));
  document.querySelector("#app").replaceChildren(
    h("h1", {}, `Training of ${project}`),
    h("section", { className: "card" },
      h("p", {}, "Trains on the labeled images with settings chosen from the data; images are split into "
        + "train, dev and test on their own when they have no split. It runs on this computer and may take minutes."),
      advancedPanel(),
      h("button", { type: "button", id: "train", className: "primary", disabled: running, onclick: startTraining },
        running ? "Training…" : "Train a model")),
    h("section", { id: "jobs" }, ...cards),
    h("section", { className: "card" }, h("h2", {}, "Models"),
      models.length ? h("table", { className: "list", id: "models" },
        h("thead", {}, h("tr", {}, ...["Model", "Created (UTC)", "Threshold", "Classes"].map((t) => h("th", {}, t)))),
        h("tbody", {}, ...models.map((model) => h("tr", {}, h("td", {}, h("a", { href: `/projects/${encodeURIComponent(project)}/models/${model.id}` }, `Model ${model.id} report`)), h("td", {}, model.created_at.replace("T", " ")),
          h("td", {}, model.threshold === null ? "—" : Number(model.threshold).toFixed(3)), h("td", {}, (model.class_names || []).join(", "))))))
        : h("p", { className: "muted" }, "No model yet.")));
  clearTimeout(polling);
  if (running) polling = setTimeout(() => draw().catch(showError), POLL_MS);
}

// The "Advanced" panel: one field per setting, limited to its safe range; an empty field keeps the
// auto-tuner's choice. It is built once and kept across redraws, so typed values survive the polling.
let advanced = null;

function advancedPanel() {
  if (advanced) return advanced;
  const form = h("form", { id: "advanced-settings", className: "settings" });
  advanced = h("details", { id: "advanced" }, h("summary", {}, "Advanced settings"),
    h("p", { className: "muted" }, "Leave a field empty to let the auto-tuner choose. Each field takes only values in its safe range."),
    form);
  api("GET", "/training/settings").then((settings) => {
    form.replaceChildren(...settings.map((setting) => h("label", {}, `${setting.name.replaceAll("_", " ")} `,
      h("input", { type: "number", name: setting.name, min: setting.min, max: setting.max, step: setting.integer ? 1 : "any",
        placeholder: `${setting.min} to ${setting.max}` }))));
  }).catch(showError);
  return advanced;
}

// Return the settings typed in the advanced panel, or null when one is outside its range (the browser says which).
function chosenSettings() {
  const form = document.querySelector("#advanced-settings");
  if (!form) return {};
  if (!form.reportValidity()) return null;
  const settings = {};
  for (const input of form.querySelectorAll("input")) if (input.value !== "") settings[input.name] = Number(input.value);
  return settings;
}

async function startTraining() {
  const settings = chosenSettings();
  if (settings === null) return;
  try {
    const job = await api("POST", projectPath(project, "training"), Object.keys(settings).length ? { settings } : {});
    showMessage(`Training job ${job.id} started.`);
    await draw();
  } catch (error) {
    showError(error);
  }
}

drawHeader(project, "train");
draw().catch(showError);

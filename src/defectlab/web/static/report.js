// The model report page: the evaluation of one model as numbers an inspector reads, and the images behind them.
//
// A confusion-matrix cell or a score-histogram bar opens exactly its images, each one click away from the
// labeling page, where a wrong label can be fixed.

import { lossChart } from "./charts.js";
import { api, diagnosisList, drawHeader, h, pageParts, projectPath, showError, showMessage, thumbnailUrl } from "./common.js";

const POLL_MS = 1000;
const BINS = 20;
const { project, rest } = pageParts();
const modelId = Number(rest[1]);
let polling = null;

function percent(value) {
  return value === null || value === undefined ? "—" : `${(100 * value).toFixed(1)} %`;
}

function figure(title, value, detail) {
  return h("div", { className: "figure card" }, h("div", { className: "muted" }, title), h("div", { className: "big" }, value),
    detail ? h("small", { className: "muted" }, detail) : null);
}

// Show the images of one selection below the report, each linked to its labeling page.
function showImages(title, images) {
  const box = document.querySelector("#chosen-images");
  const base = `/projects/${encodeURIComponent(project)}/images`;
  box.replaceChildren(h("h2", {}, `${title}: ${images.length} ${images.length === 1 ? "image" : "images"}`),
    images.length ? h("div", { className: "grid" }, ...images.map((image) => h("figure", { className: "thumb", dataset: { id: image.image_id } },
      h("a", { href: `${base}/${image.image_id}` }, h("img", { src: thumbnailUrl(project, image.image_id), alt: image.path, width: 160, height: 160 })),
      h("figcaption", {}, h("span", { className: "path" }, image.path),
        h("span", { className: `chip ${image.outcome === "correct" ? "no-defect" : "defect"}` }, image.outcome.replace("_", " ")),
        h("span", { className: "chip" }, `label ${image.true} · predicted ${image.predicted} · score ${image.score.toFixed(3)}`)))))
      : h("p", { className: "muted" }, "None."));
  box.scrollIntoView({ block: "start" });
}

function confusionMatrix(result) {
  const names = result.class_names;
  const cell = (row, column) => {
    const count = result.confusion_matrix[row][column];
    const images = result.images.filter((image) => image.true === names[row] && image.predicted === names[column]);
    return h("td", { className: `number ${row === column ? "diagonal" : "off"}` },
      h("button", { type: "button", className: "link", dataset: { row: names[row], column: names[column] },
        onclick: () => showImages(`Labeled ${names[row]}, predicted ${names[column]}`, images) }, count));
  };
  return h("table", { className: "list confusion", id: "confusion" },
    h("thead", {}, h("tr", {}, h("th", {}, "label ↓ · predicted →"), ...names.map((name) => h("th", {}, name)))),
    h("tbody", {}, ...names.map((name, row) => h("tr", {}, h("th", {}, name), ...names.map((_, column) => cell(row, column))))));
}

function histogram(result) {
  const scores = result.images.map((image) => image.score);
  const low = Math.min(...scores, result.threshold);
  const high = Math.max(...scores, result.threshold);
  const width = (high - low) / BINS || 1;
  const bins = Array.from({ length: BINS }, (_, index) => ({ from: low + index * width, images: [] }));
  for (const image of result.images) bins[Math.min(BINS - 1, Math.floor((image.score - low) / width))].images.push(image);
  const tallest = Math.max(1, ...bins.map((bin) => bin.images.length));
  const bars = bins.map((bin) => {
    const good = bin.images.filter((image) => image.true === "ok").length;
    const bad = bin.images.length - good;
    return h("button", {
      type: "button", className: "bar", title: `${bin.from.toFixed(3)} to ${(bin.from + width).toFixed(3)}: ${good} good, ${bad} defective`,
      onclick: () => showImages(`Score ${bin.from.toFixed(3)} to ${(bin.from + width).toFixed(3)}`, bin.images),
    }, h("span", { className: "bad", style: `height: ${(100 * bad) / tallest}%` }), h("span", { className: "good", style: `height: ${(100 * good) / tallest}%` }));
  });
  const marker = h("div", { className: "threshold", style: `left: ${(100 * (result.threshold - low)) / (high - low || 1)}%`, title: `threshold ${result.threshold}` });
  return h("div", {}, h("div", { className: "histogram", id: "histogram" }, ...bars, marker),
    h("small", { className: "muted" }, `Defect scores from ${low.toFixed(3)} to ${high.toFixed(3)}; green: labeled good, red: labeled defective; the line is the threshold ${result.threshold.toFixed(3)}.`));
}

function perClass(result) {
  return h("table", { className: "list" },
    h("thead", {}, h("tr", {}, ...["Class", "Images", "Predicted", "Precision", "Recall", "F1"].map((t) => h("th", {}, t)))),
    h("tbody", {}, ...result.per_class.map((row) => h("tr", {}, h("td", {}, row.name), h("td", { className: "number" }, row.support),
      h("td", { className: "number" }, row.predicted), h("td", {}, percent(row.precision)), h("td", {}, percent(row.recall)), h("td", {}, percent(row.f1))))));
}

function report(job) {
  const result = job.result;
  const outcome = (name) => result.images.filter((image) => image.outcome === name);
  return h("section", { id: "report" },
    h("h2", {}, `Evaluation on the ${result.split} split · ${result.images.length} images`),
    h("div", { className: "figures" },
      figure("Escape rate", percent(result.escape_rate), `${result.escapes} of ${result.defective} defective images called OK`),
      figure("Overkill rate", percent(result.overkill_rate), `${result.overkills} of ${result.good} good images rejected`),
      figure("Accuracy", percent(result.accuracy)),
      figure("Threshold", result.threshold.toFixed(3))),
    h("div", { className: "row" },
      h("button", { type: "button", id: "show-escapes", onclick: () => showImages("Escapes", outcome("escape")) }, "Show escapes"),
      h("button", { type: "button", id: "show-overkills", onclick: () => showImages("Overkills", outcome("overkill")) }, "Show overkills")),
    h("div", { className: "report-parts" },
      h("div", { className: "card" }, h("h3", {}, "Confusion matrix"), confusionMatrix(result)),
      h("div", { className: "card" }, h("h3", {}, "Score histogram"), histogram(result))),
    h("div", { className: "card" }, h("h3", {}, "Per class"), perClass(result)),
    result.diagnosis && result.diagnosis.length
      ? h("div", { className: "card" }, h("h3", {}, `Classes never predicted on the ${result.split} split`), diagnosisList(project, result.diagnosis, "evaluation-diagnosis"))
      : null,
    h("section", { id: "chosen-images", className: "card" }, h("p", { className: "muted" }, "Click a matrix cell or a histogram bar to see its images.")));
}

// Draw the diagnosis stored when the model's training ended, and its loss per epoch.
function trainingPart(model) {
  if (!model) return null;
  const chart = lossChart(model.loss_curves, "loss-chart");
  return h("section", { className: "card", id: "training" }, h("h3", {}, "Diagnosis when training ended"),
    diagnosisList(project, model.diagnosis),
    h("h3", {}, "Loss per epoch"),
    chart || h("p", { className: "muted" }, "No loss curves: anomaly models learn from good images in one pass, without epochs."));
}

async function draw() {
  const [allJobs, models] = await Promise.all([api("GET", `/jobs?project=${encodeURIComponent(project)}`),
    api("GET", projectPath(project, "models"))]);
  const model = models.find((row) => row.id === modelId);
  const jobs = allJobs.filter((job) => job.kind === "evaluate" && job.options.model_id === modelId);
  const running = jobs.find((job) => job.status === "running");
  const newest = jobs.find((job) => job.status === "succeeded");
  const failed = jobs.length && jobs[0].status === "failed" ? jobs[0] : null;
  const split = h("select", { name: "split" }, ...["test", "dev", "train"].map((name) => h("option", { value: name }, name)));
  const parts = [
    h("h1", {}, `Model ${modelId} of ${project}`),
    h("div", { className: "card row" }, "Evaluate on the ", split, " split ",
      h("button", { type: "button", id: "evaluate", className: "primary", disabled: Boolean(running), onclick: () => evaluate(split.value) },
        running ? "Evaluating…" : "Evaluate")),
  ];
  if (failed) parts.push(h("p", { className: "error card" }, `The last evaluation failed: ${failed.error}`));
  if (newest) parts.push(report(await api("GET", `/jobs/${newest.id}`)));
  else if (!running) parts.push(h("p", { className: "muted" }, "Not evaluated yet."));
  parts.push(trainingPart(model));
  document.querySelector("#app").replaceChildren(...parts);
  clearTimeout(polling);
  if (running) polling = setTimeout(() => draw().catch(showError), POLL_MS);
}

async function evaluate(split) {
  try {
    await api("POST", projectPath(project, "models", String(modelId), "evaluations"), { split });
    showMessage(`Evaluating model ${modelId} on the ${split} split.`);
    await draw();
  } catch (error) {
    showError(error);
  }
}

drawHeader(project, "train");
draw().catch(showError);

// The model report page: the evaluation of one model as numbers an inspector reads, and the images behind them.
//
// A confusion-matrix cell or a score-histogram bar opens exactly its images, each one click away from the
// labeling page, where a wrong label can be fixed.

import { lineChart, legendFigure, lossChart, noCurvesWords, svg } from "./charts.js";
import { api, diagnosisList, drawHeader, h, pageParts, projectPath, showError, showMessage, thumbnailUrl } from "./common.js";

const POLL_MS = 1000;
const BINS = 20;
const HEATMAP_FLOOR = 0.3; // heatmap scores at or below this are not shaded; 0.5 is the threshold
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

// Draw label and prediction over one evaluated image: labeled boxes in green, predicted boxes dashed in red, and
// an anomaly model's heatmap as red cells, more opaque where the score is higher. The SVG is fitted to the image
// the way the thumbnail is (centred, whole), so both share the image's pixel coordinates.
function overlay(image) {
  const parts = [];
  const heatmap = image.heatmap;
  if (heatmap) {
    heatmap.values.forEach((row, top) => row.forEach((value, left) => {
      const opacity = Math.min(1, Math.max(0, (value - HEATMAP_FLOOR) / (1 - HEATMAP_FLOOR))) * 0.7;
      if (opacity > 0) parts.push(svg("rect", { x: left * heatmap.cell, y: top * heatmap.cell, width: heatmap.cell, height: heatmap.cell, class: "heat", "fill-opacity": opacity.toFixed(2) }));
    }));
  }
  const box = (region, kind) => svg("rect", { x: region.box[0], y: region.box[1], width: region.box[2] - region.box[0], height: region.box[3] - region.box[1], class: kind },
    svg("title", {}, `${kind === "labeled" ? "labeled" : "predicted"} ${region.class}`));
  parts.push(...(image.labeled_boxes || []).map((region) => box(region, "labeled")));
  parts.push(...(image.predicted_boxes || []).map((region) => box(region, "predicted")));
  return h("div", { className: "overlaid" },
    h("img", { src: thumbnailUrl(project, image.image_id), alt: image.path, width: 160, height: 160 }),
    svg("svg", { viewBox: `0 0 ${image.width} ${image.height}`, preserveAspectRatio: "xMidYMid meet", class: "overlay" }, ...parts),
    h("span", { className: "badge label" }, `label ${image.true}`),
    h("span", { className: `badge predicted ${image.predicted === image.true ? "same" : "differs"}` }, `predicted ${image.predicted}`));
}

// Show the images of one selection below the report, each linked to its labeling page.
function showImages(title, images) {
  const box = document.querySelector("#chosen-images");
  const base = `/projects/${encodeURIComponent(project)}/images`;
  box.replaceChildren(h("h2", {}, `${title}: ${images.length} ${images.length === 1 ? "image" : "images"}`),
    h("p", { className: "muted" }, "On each image: the label at the top left, the prediction at the bottom right; green boxes are labeled "
      + "regions, dashed red boxes predicted ones, and red shading an anomaly model's heatmap, stronger where the defect score is higher."),
    images.length ? h("div", { className: "grid" }, ...images.map((image) => h("figure", { className: "thumb", dataset: { id: image.image_id } },
      h("a", { href: `${base}/${image.image_id}` }, overlay(image)),
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

// Draw the precision-recall curve of the defect scores, with the point the model's threshold chose.
function precisionRecall(result) {
  const curve = result.precision_recall;
  if (!curve || curve.reason) return h("p", { className: "muted" }, curve ? curve.reason : "Evaluate again to see this curve.");
  const series = [{ name: "all", label: "every possible threshold", colour: "#1f5fbf", step: true,
    points: curve.recall.map((recall, index) => [recall, curve.precision[index]]) }];
  const chosen = curve.chosen;
  if (chosen.precision !== null) {
    series.push({ name: "chosen", colour: "#b42318", points: [[chosen.recall, chosen.precision]],
      label: `this model's threshold: ${percent(chosen.recall)} of defective images caught, ${percent(chosen.precision)} of rejects defective` });
  }
  return h("div", {}, legendFigure(lineChart(series, { xLabel: "recall: share of defective images caught",
    yLabel: "precision", xRange: [0, 1], yRange: [0, 1], id: "pr-chart", title: "Precision and recall" }), series),
  h("small", { className: "muted" }, "Precision: the share of rejected images that are defective. Moving the threshold trades "
    + "one for the other: catching more defective images rejects more good ones."));
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
      h("div", { className: "card" }, h("h3", {}, "Score histogram"), histogram(result)),
      h("div", { className: "card", id: "precision-recall" }, h("h3", {}, "Precision and recall"), precisionRecall(result))),
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
    chart || h("p", { className: "muted" }, noCurvesWords(model.task)));
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

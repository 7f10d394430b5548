// The review page: proposed labels one at a time, least confident first, each settled with one key.
//
// Accept (A or Enter) makes the proposal the image's label, a class key (1–9, N for no defect) stores the
// person's class instead, and reject (R) leaves the image unlabeled. A blind check comes without its proposal,
// so the person labels the image unseen and cannot accept it. Making proposals runs as a job, which this page
// only reads, so a reload shows the same progress.

import {
  ApiError, api, classColour, drawHeader, h, pageParts, projectPath, showError, showMessage,
  stateWords,
} from "./common.js";
import { TileViewer } from "./viewer.js";

const POLL_MS = 1000;
// The server's report leaves gaps longer than five minutes out of reviewing time, and so does the session counter.
const PAUSE_S = 300;
const REGION_TASKS = ["detection", "segmentation"];

const { project } = pageParts();
const proposalsPath = projectPath(project, "proposals");
const sessionKey = `defectlab.review.${project}`;

let info = null;          // the project: task and classes
let current = null;       // the proposal on screen, from GET .../proposals/next
let shownAt = 0;          // when it appeared, in ms since the epoch
let viewer = null;
let reviewing = false;    // true from sending a review until the next proposal is on screen
let polling = null;

// ---- the counter of this browser session ----

function readSession() {
  try {
    return JSON.parse(sessionStorage.getItem(sessionKey)) || { reviews: 0, seconds: 0 };
  } catch {
    return { reviews: 0, seconds: 0 };
  }
}

function countReview() {
  const session = readSession();
  session.reviews += 1;
  session.seconds += Math.min(PAUSE_S, (Date.now() - shownAt) / 1000);
  sessionStorage.setItem(sessionKey, JSON.stringify(session));
}

function drawCounter() {
  const session = readSession();
  const perHour = session.seconds > 0 ? Math.round((3600 * session.reviews) / session.seconds) : null;
  const left = current ? current.remaining : 0;
  document.querySelector("#counter").replaceChildren(
    h("span", {}, "Reviewed in this session: ", h("strong", { id: "reviewed" }, String(session.reviews))),
    h("span", {}, "Images per hour: ", h("strong", { id: "per-hour" }, perHour === null ? "—" : String(perHour))),
    h("span", {}, "Left to review: ", h("strong", { id: "remaining" }, String(left))));
}

// ---- making proposals ----

function progressWords(job) {
  const progress = job.progress;
  if (!progress) return "Starting…";
  return `${progress.message} · ${progress.done} of ${progress.total} · ${Math.round(progress.seconds)} s`;
}

function drawJob(job) {
  const button = document.querySelector("#make-proposals");
  const box = document.querySelector("#job");
  const running = job && job.status === "running";
  button.disabled = running;
  button.textContent = running ? "Making proposals…" : "Make proposals";
  if (!running) { box.replaceChildren(); return; }
  const progress = job.progress || { done: 0, total: 1 };
  box.replaceChildren(h("div", { className: "progress", dataset: { job: job.id } },
    h("progress", { value: progress.done, max: Math.max(1, progress.total) }),
    h("span", {}, ` ${progressWords(job)}`)));
}

async function followJob(jobId) {
  clearTimeout(polling);
  const job = await api("GET", `/jobs/${jobId}`);
  drawJob(job);
  if (job.status === "running") {
    polling = setTimeout(() => followJob(jobId).catch(showError), POLL_MS);
    return;
  }
  if (job.status === "failed") {
    showMessage(`Making proposals failed: ${job.error}`, "error");
    return;
  }
  const result = job.result;
  showMessage(`Proposed labels for ${result.proposed} images from ${result.source} in ${result.seconds} s; `
    + `${result.blind} of them are blind checks.`);
  await Promise.all([showNext(), drawReport()]);
}

async function makeProposals() {
  try {
    const job = await api("POST", proposalsPath, {});
    await followJob(job.id);
  } catch (error) {
    showError(error);
  }
}

// A job started before a reload, or by someone else, is followed as if this page had started it.
async function followRunningJob() {
  const jobs = await api("GET", `/jobs?project=${encodeURIComponent(project)}`);
  const running = jobs.find((job) => job.kind === "propose" && job.status === "running");
  if (running) await followJob(running.id);
}

// ---- the proposal on screen ----

function imageLevel() {
  return !REGION_TASKS.includes(info.task);
}

function confidenceWords(confidence) {
  return `${Math.round(confidence * 100)}% confident`;
}

function drawProposalHeading() {
  const heading = document.querySelector("#proposal");
  if (!current) {
    heading.replaceChildren(h("p", { className: "muted", id: "none-left" },
      "No proposal is waiting for review. Make proposals for the unlabeled images with the button above."));
    return;
  }
  const path = h("span", { className: "muted" }, ` · ${current.path}`);
  if (current.blind) {
    heading.replaceChildren(h("div", { className: "state blind", id: "blind-check" },
      "Blind check: label this image yourself", path),
    h("p", { className: "muted" }, "The proposal is hidden, so your label shows whether proposals can be trusted. "
      + "Choose the class with its key or button."));
    return;
  }
  const regions = current.regions || [];
  heading.replaceChildren(h("div", { className: "state", id: "proposed" },
    "Proposed: ", h("span", { id: "proposed-class" }, stateWords(current.label)),
    h("span", { id: "confidence" }, ` · ${confidenceWords(current.confidence)}`), path),
  regions.length ? h("p", { className: "muted" }, `${regions.length} proposed region${regions.length > 1 ? "s" : ""} drawn on the image, `
    + `from ${current.source}.`) : h("p", { className: "muted" }, `From ${current.source}.`));
}

async function drawImage() {
  const stage = document.querySelector("#stage");
  stage.hidden = !current;
  if (!current) { stage.replaceChildren(); viewer = null; return; }
  const imagePath = projectPath(project, "images", String(current.image_id));
  const tiles = await api("GET", `${imagePath}/tiles`);
  const canvas = h("canvas", { id: "canvas", dataset: { tool: "pan" } });
  stage.replaceChildren(canvas);
  viewer = new TileViewer(canvas, tiles, (level, column, row) => `/api${imagePath}/tiles/${level}/${column}/${row}.png`);
  const masks = await Promise.all((current.regions || []).filter((region) => region.mask).map(maskCanvas));
  const proposal = current;
  viewer.overlays.push((ctx, view) => drawRegions(ctx, view, proposal, masks));
  window.defectlabViewer = viewer;
}

// The viewer of an earlier proposal may still draw a last frame, so each viewer draws its own proposal.
function drawRegions(ctx, view, proposal, masks) {
  if (proposal.blind) return;
  for (const region of proposal.regions || []) {
    const colour = classColour(info.classes, region.class);
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.setLineDash([6, 4]);
    if (region.box) {
      const a = view.toScreen(region.box[0], region.box[1]);
      const b = view.toScreen(region.box[2], region.box[3]);
      ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
    } else if (region.polygon) {
      ctx.beginPath();
      for (let i = 0; i < region.polygon.length; i += 2) {
        const point = view.toScreen(region.polygon[i], region.polygon[i + 1]);
        if (i === 0) ctx.moveTo(point.x, point.y); else ctx.lineTo(point.x, point.y);
      }
      ctx.closePath();
      ctx.stroke();
    }
    ctx.restore();
  }
  for (const mask of masks) {
    const corner = view.toScreen(mask.x, mask.y);
    ctx.save();
    ctx.globalAlpha = 0.45;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(mask.canvas, corner.x, corner.y, mask.canvas.width * view.scale, mask.canvas.height * view.scale);
    ctx.restore();
  }
}

// Paint a proposed mask (a PNG crop placed at x, y) in its class colour, transparent where the mask is 0.
async function maskCanvas(region) {
  const picture = new Image();
  picture.src = `data:image/png;base64,${region.mask.png}`;
  await picture.decode();
  const canvas = document.createElement("canvas");
  canvas.width = picture.naturalWidth;
  canvas.height = picture.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(picture, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const colour = [1, 3, 5].map((start) => parseInt(classColour(info.classes, region.class).slice(start, start + 2), 16));
  for (let i = 0; i < pixels.data.length; i += 4) pixels.data.set(pixels.data[i] > 0 ? [...colour, 255] : [0, 0, 0, 0], i);
  ctx.putImageData(pixels, 0, 0);
  return { x: region.mask.x, y: region.mask.y, canvas };
}

function drawActions() {
  const defects = info.classes.filter((name) => name !== "ok");
  const none = !current;
  const blind = Boolean(current && current.blind);
  const classButtons = defects.map((name, index) => h("button", {
    type: "button", className: "class-button", style: `border-color: ${classColour(info.classes, name)}`,
    dataset: { class: name }, disabled: none, onclick: () => correct(name),
  }, index < 9 ? `${index + 1} ` : "", name));
  const correctWords = imageLevel() ? "Correct the class:"
    : "Correct: a class key keeps the proposed regions and gives them that class. N means no defect and no regions.";
  document.querySelector("#actions").replaceChildren(
    h("div", { className: "row" },
      h("button", {
        type: "button", id: "accept", className: "primary", disabled: none || blind,
        title: blind ? "A blind check cannot be accepted: choose the class yourself" : "",
        onclick: accept,
      }, "Accept (A or Enter)"),
      h("button", { type: "button", id: "reject", disabled: none, onclick: reject }, "Reject: leave unlabeled (R)")),
    h("p", { className: "muted" }, blind ? "Label the image yourself:" : correctWords),
    h("div", { className: "class-buttons", id: "classes" }, ...classButtons,
      h("button", { type: "button", id: "no-defect", disabled: none, onclick: () => correct("ok") }, "N no defect")));
}

async function showNext() {
  current = await api("GET", `${proposalsPath}/next`);
  drawProposalHeading();
  drawActions();
  drawCounter();
  await drawImage();
  // The proposal counts as shown once its image is drawn, which is also when keys act on it again.
  shownAt = Date.now();
  document.querySelector("#review").dataset.proposal = current ? String(current.id) : "";
}

// ---- reviewing ----

async function review(action, className) {
  if (!current || reviewing) return;
  const body = { action };
  if (action === "correct") body.class = className;
  if (action === "correct" && !imageLevel() && className !== "ok") {
    // NOTE: regions cannot be drawn on this page yet, so a class key can only relabel the proposed ones.
    if (!current.regions || !current.regions.length) {
      showMessage("This proposal has no regions to relabel. Reject it (R), then draw the regions on the labeling page.", "error");
      return;
    }
    body.regions = current.regions.map((region) => ({ ...region, class: className, score: undefined }));
  }
  // Keys stay ignored until the next proposal is on screen, so a quick second key never settles this one again.
  reviewing = true;
  try {
    if (await send(current.id, body)) {
      drawReport().catch(showError);
      await showNext();
    }
  } finally {
    reviewing = false;
  }
}

// Send one review and return whether the page moves on: it was stored, or someone else settled it first (409).
async function send(proposalId, body) {
  try {
    const settled = await api("POST", `${proposalsPath}/${proposalId}/review`, body);
    countReview();
    showMessage(settledWords(settled));
    if (settled.refresh_job) {
      // The server started new proposals from the labels so far; the current ones are served until they are ready.
      showMessage(`${settledWords(settled)} Enough new labels came in to propose again, so new proposals are being made.`);
      followJob(settled.refresh_job).catch(showError);
    }
    return true;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 409)) { showError(error); return false; }
    showMessage(error.message, "error");
    return true;
  }
}

function settledWords(settled) {
  const image = settled.path;
  if (settled.blind) {
    const verdict = settled.agrees ? "agrees with" : "differs from";
    return `Blind check of ${image}: your label ${stateWords(settled.answer)} ${verdict} the proposal ${stateWords(settled.label)}.`;
  }
  if (settled.status === "rejected") return `Rejected the proposal for ${image}; it stays unlabeled.`;
  if (settled.status === "accepted") return `Accepted ${stateWords(settled.answer)} for ${image}.`;
  return `Corrected ${image} to ${stateWords(settled.answer)} (proposed: ${stateWords(settled.label)}).`;
}

function accept() {
  if (current && current.blind) {
    showMessage("This is a blind check, so it cannot be accepted: choose the class yourself (1–9, or N for no defect).", "error");
    return;
  }
  review("accept").catch(showError);
}

function reject() {
  review("reject").catch(showError);
}

function correct(name) {
  review("correct", name).catch(showError);
}

function onKey(event) {
  if (event.target.matches("input, textarea, select")) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  const defects = info.classes.filter((name) => name !== "ok");
  if (key === "a" || key === "enter") { event.preventDefault(); accept(); }
  else if (key === "r") reject();
  else if (key === "n") correct("ok");
  else if (/^[1-9]$/.test(key) && defects[Number(key) - 1]) correct(defects[Number(key) - 1]);
  else if (viewer && (key === "+" || key === "=")) viewer.zoomAt(1.5);
  else if (viewer && key === "-") viewer.zoomAt(1 / 1.5);
  else if (viewer && key === "0") viewer.fit();
}

// ---- the report ----

function shareWords(share) {
  return share === null || share === undefined ? "—" : `${Math.round(share * 100)}%`;
}

// Per proposed class: how many were settled and the share right (accepted, or given the same class).
function classTable(byClass) {
  const classes = Object.entries(byClass);
  if (!classes.length) return h("p", { className: "muted" }, "No proposal shown to a reviewer has been settled yet.");
  return h("table", { className: "list", id: "by-class" },
    h("thead", {}, h("tr", {}, h("th", {}, "Proposed class"), h("th", {}, "Reviewed"), h("th", {}, "Share right"))),
    h("tbody", {}, ...classes.map(([name, entry]) => h("tr", { dataset: { class: name } },
      h("td", {}, stateWords(name)), h("td", { className: "number" }, entry.reviewed),
      h("td", { className: "number" }, shareWords(entry.right))))));
}

function reviewerTable(reviewers) {
  const rows = Object.entries(reviewers);
  if (!rows.length) return null;
  return h("table", { className: "list", id: "reviewers" },
    h("thead", {}, h("tr", {}, h("th", {}, "Reviewer"), h("th", {}, "Reviews"), h("th", {}, "Per hour"))),
    h("tbody", {}, ...rows.map(([name, entry]) => h("tr", {}, h("td", {}, name),
      h("td", { className: "number" }, entry.reviews),
      h("td", { className: "number" }, entry.per_hour === null ? "—" : entry.per_hour)))));
}

async function drawReport() {
  const report = await api("GET", `${proposalsPath}/report`);
  const status = report.by_status;
  const blind = report.blind.checks
    ? `Blind checks: ${report.blind.checks}; the reviewers' labels agreed with the proposals on ${shareWords(report.blind.agree)}.`
    : "Blind checks: none answered yet.";
  const parts = [
    h("h2", {}, "How the proposals fared"),
    ...report.warnings.map((warning) => h("div", { className: "conflict warning", role: "alert" }, warning)),
    h("p", {}, `${status.accepted} accepted, ${status.corrected} corrected, ${status.rejected} rejected, ${status.open} open.`),
    classTable(report.by_class),
    h("p", { id: "blind-agreement" }, blind),
    h("p", {}, `Accepted as proposed: ${shareWords(report.accepted_share)} of the proposals shown.`),
    reviewerTable(report.reviewers),
  ];
  document.querySelector("#report").replaceChildren(...parts.filter(Boolean));
}

// ---- the page ----

function shortcutList() {
  const keys = [["A or Enter", "accept the proposal"], ["R", "reject: the image stays unlabeled"],
    ["1–9", "correct to that defect class"], ["N", "correct to no defect"], ["+ − 0", "zoom in, out, fit"]];
  return h("dl", {}, ...keys.flatMap(([key, words]) => [h("dt", {}, key), h("dd", {}, words)]));
}

async function start() {
  drawHeader(project, "review");
  info = await api("GET", projectPath(project));
  document.querySelector("#app").replaceChildren(
    h("h1", {}, `Review proposals of ${project}`, h("small", { className: "muted" }, ` · ${info.task}`)),
    h("section", { className: "card" },
      h("p", {}, "Each unlabeled image gets a proposed label from the project's newest model, or from the labeled "
        + "images when there is no model yet or labels changed since it was trained. A proposal becomes a label only "
        + "when you accept or correct it. The least confident proposals come first."),
      h("div", { className: "row" },
        h("button", { type: "button", id: "make-proposals", className: "primary", onclick: makeProposals }, "Make proposals"),
        h("span", { id: "job" }))),
    h("div", { className: "review-counter card", id: "counter" }),
    h("div", { className: "labeling", id: "review" },
      h("div", {}, h("div", { id: "proposal" }), h("div", { className: "stage review-stage", id: "stage" })),
      h("aside", {},
        h("section", { className: "card", id: "actions" }),
        h("section", { className: "card", id: "report" }),
        h("details", { className: "card" }, h("summary", {}, "Keyboard shortcuts"), shortcutList()))));
  document.addEventListener("keydown", onKey);
  await Promise.all([showNext(), drawReport(), followRunningJob()]);
}

start().catch(showError);

// Shared parts of the pages: calling the REST API, building elements, the page header and messages.
//
// Elements are built with h(), which sets text through text nodes and never
// through innerHTML, so names and definitions people typed are shown as typed.

const CSRF_HEADER = "X-CSRF-Token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Call one route of the REST API and return its JSON; an error response throws ApiError with the server's message.
// The session cookie names the account; a change also sends the session's CSRF token. Without a session the
// page moves to the sign-in page, which comes back here afterwards.
export async function api(method, path, body) {
  const headers = {};
  const signingIn = method === "POST" && path === "/session";
  if (method !== "GET" && !signingIn) headers[CSRF_HEADER] = (await signedIn()).csrf || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !signingIn) goToSignIn();
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, (data && data.error) || `${method} ${path} failed`);
  return data;
}

export function goToSignIn() {
  location.assign(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
}

let account = null;

// Return the signed-in account: {name, role, csrf}, read once per page.
export async function signedIn() {
  if (!account) account = await api("GET", "/session");
  return account;
}

// Return an address under /api with each part of `parts` escaped, such as projectPath("plates", "book", "pit/x").
export function projectPath(project, ...parts) {
  return ["/projects", project, ...parts].map((part, index) => (index ? encodeURIComponent(part) : part)).join("/");
}

// Build an element: attributes from `attrs` (on* keys add listeners), then children (strings become text).
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === "className") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// Return the project name and what follows it from an address such as /projects/NAME/images/7.
export function pageParts() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  return { project: parts[1], rest: parts.slice(2) };
}

// Draw the header: the way back to projects, the project's pages, and who is signed in with a way out.
export function drawHeader(project, current) {
  const top = document.querySelector("#top");
  const links = [h("a", { href: "/", className: current === "projects" ? "current" : "" }, "Projects")];
  if (project) {
    const base = `/projects/${encodeURIComponent(project)}`;
    links.push(h("span", { className: "project-name" }, project));
    links.push(h("a", { href: base, className: current === "browser" ? "current" : "" }, "Images"));
    links.push(h("a", { href: `${base}/book`, className: current === "book" ? "current" : "" }, "Defect book"));
    links.push(h("a", { href: `${base}/train`, className: current === "train" ? "current" : "" }, "Training"));
  }
  const who = h("span", { className: "who", id: "who" });
  top.replaceChildren(h("nav", {}, h("strong", { className: "brand" }, "defectlab"), ...links), who);
  signedIn().then((me) => who.replaceChildren(`Signed in as ${me.name} (${me.role}) `,
    h("button", { type: "button", className: "link", onclick: signOut }, "Sign out"))).catch(() => {});
}

async function signOut() {
  await api("DELETE", "/session");
  location.assign("/signin");
}

let messageTimer = null;

// Show a message under the header; errors stay until the next message, others fade after a few seconds.
export function showMessage(text, kind = "info") {
  const box = document.querySelector("#message");
  box.className = kind;
  box.replaceChildren(h("span", {}, text), h("button", { type: "button", className: "link", onclick: () => { box.hidden = true; } }, "Dismiss"));
  box.hidden = false;
  clearTimeout(messageTimer);
  if (kind !== "error") messageTimer = setTimeout(() => { box.hidden = true; }, 4000);
}

export function showError(error) {
  showMessage(error instanceof Error ? error.message : String(error), "error");
}

// Words for a label state; "no defect" and "not labeled" are different states and never share a word.
export function stateWords(label) {
  if (label === null || label === undefined) return "not labeled";
  if (label === "ok") return "no defect";
  return label;
}

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
  "#469990", "#9a6324", "#800000", "#000075"];

// Return a steady colour for a class, by its position among the project's defect classes.
export function classColour(classes, name) {
  const index = classes.filter((c) => c !== "ok").indexOf(name);
  return PALETTE[(index < 0 ? 0 : index) % PALETTE.length];
}

export function thumbnailUrl(project, imageId, size = 192) {
  return `/api${projectPath(project, "images", String(imageId), "thumbnail")}?size=${size}`;
}

// Put a decision rule in words, such as "defective when the longest side is at least 4 px".
export function ruleWords(rule) {
  if (!rule) return "";
  const unit = rule.unit || "px";
  const parts = [];
  if (rule.min_length !== undefined) parts.push(`longest side is at least ${rule.min_length} ${unit}`);
  if (rule.min_area !== undefined) parts.push(`area is at least ${rule.min_area} ${unit}²`);
  let words = parts.length ? `defective when the ${parts.join(" and the ")}` : "";
  if (rule.pixel_size_mm) words += ` (one pixel is ${rule.pixel_size_mm} mm)`;
  return words;
}

// Draw a model's diagnosis: one statement per finding, with links to the images a finding names. Without findings,
// `reason` explains why, when it is known.
export function diagnosisList(project, findings, id = "diagnosis", reason = null) {
  if (findings === null || findings === undefined) {
    return h("p", { className: "muted", id }, reason ? `Not diagnosed: ${reason}`
      : "Not diagnosed: the model was trained outside a training job, or its diagnosis failed.");
  }
  if (!findings.length) return h("p", { className: "muted", id }, "Nothing to report: enough images per class, no sign of overfitting, every class predicted.");
  const base = `/projects/${encodeURIComponent(project)}/images`;
  return h("ul", { className: "diagnosis", id }, ...findings.map((finding) => h("li", { dataset: { kind: finding.kind } }, finding.message,
    (finding.details.image_ids || []).length
      ? h("span", { className: "image-links" }, " Open: ", ...finding.details.image_ids.map((imageId) => h("a", { href: `${base}/${imageId}` }, `image ${imageId}`)))
      : null)));
}

// Adding images from the browser: drop files, folders or a zip. They are sent in batches with a progress bar
// and imported by a job. The import report then lists every file that was not imported and why.

import { api, h, projectPath, signedIn } from "./common.js";

const BATCH_FILES = 100;
const BATCH_BYTES = 64 << 20;
const POLL_MS = 1000;

// Collect the files of a drop, walking into dropped folders; each gets its path relative to the drop.
async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((file) => ({ file, path: file.name }));
  const found = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      found.push({ file, path: `${prefix}${entry.name}` });
      return;
    }
    const reader = entry.createReader();
    // readEntries returns at most about 100 entries a call, so it is called until it returns none.
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
    }
  };
  for (const entry of entries) await walk(entry, "");
  return found;
}

function batches(files) {
  const groups = [];
  let current = [];
  let bytes = 0;
  for (const item of files) {
    if (current.length && (current.length >= BATCH_FILES || bytes + item.file.size > BATCH_BYTES)) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.file.size;
  }
  if (current.length) groups.push(current);
  return groups;
}

// Send one batch with XMLHttpRequest, whose upload events give progress, which fetch does not.
async function sendBatch(url, group, onBytes) {
  const { csrf } = await signedIn();
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const { file, path } of group) form.append("files", file, path);
    const request = new XMLHttpRequest();
    request.open("POST", `/api${url}`);
    request.setRequestHeader("X-CSRF-Token", csrf || "");
    request.upload.onprogress = (event) => onBytes(event.loaded);
    request.onload = () => {
      const body = request.responseText ? JSON.parse(request.responseText) : {};
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new Error(body.error || `upload failed with status ${request.status}`));
    };
    request.onerror = () => reject(new Error("the upload was interrupted; check the connection and try again"));
    request.send(form);
  });
}

function reportView(report) {
  const problems = report.problems || [];
  return h("div", { id: "import-report" },
    h("p", {}, h("strong", {}, `Imported ${report.files} files: `),
      `${report.added} images added, ${report.updated} updated, ${report.unchanged} unchanged, ${report.skipped} not imported.`),
    problems.length ? h("table", { className: "list problems" },
      h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Problem"), h("th", {}, "Severity"))),
      h("tbody", {}, ...problems.map((problem) => h("tr", {}, h("td", {}, problem.path), h("td", {}, problem.message),
        h("td", {}, problem.severity || "error"))))) : h("p", {}, "No problems found."));
}

async function waitForJob(jobId, status) {
  for (;;) {
    const job = await api("GET", `/jobs/${jobId}`);
    if (job.status !== "running") return job;
    status.textContent = job.progress ? `Importing: ${job.progress.message} (${job.progress.done} of ${job.progress.total})` : "Importing…";
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

// Upload `files` ({file, path}) into the project and show the progress and the import report in `box`.
async function upload(project, files, box, onDone) {
  const total = files.reduce((sum, item) => sum + item.file.size, 0);
  const bar = h("progress", { value: 0, max: Math.max(1, total) });
  const status = h("span", {}, ` Sending ${files.length} files…`);
  box.replaceChildren(bar, status);
  try {
    const { upload: uploadId } = await api("POST", projectPath(project, "uploads"));
    let sent = 0;
    for (const group of batches(files)) {
      await sendBatch(projectPath(project, "uploads", uploadId, "files"), group, (loaded) => { bar.value = sent + loaded; });
      sent += group.reduce((sum, item) => sum + item.file.size, 0);
      bar.value = sent;
      status.textContent = ` Sent ${sent} of ${total} bytes`;
    }
    const job = await waitForJob((await api("POST", projectPath(project, "uploads", uploadId, "import"))).id, status);
    if (job.status === "failed") box.replaceChildren(h("p", { className: "error" }, `The import failed: ${job.error}`));
    else box.replaceChildren(reportView(job.result));
    onDone();
  } catch (error) {
    box.replaceChildren(h("p", { className: "error" }, error.message));
  }
}

// Build the "Add images" card of a project: a drop zone, a file chooser and a folder chooser.
export function uploadCard(project, onDone) {
  const result = h("div", { id: "upload-result" });
  const start = (files) => { if (files.length) upload(project, files, result, onDone); };
  const picked = (event) => start([...event.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
  const files = h("input", { type: "file", multiple: true, id: "upload-files", onchange: picked });
  const folder = h("input", { type: "file", id: "upload-folder", onchange: picked });
  folder.webkitdirectory = true;
  const zone = h("div", { className: "drop-zone", id: "drop-zone" }, "Drop images, label files, folders or a zip here, or choose: ",
    h("label", {}, "files ", files), h("label", {}, "a folder ", folder));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    start(await droppedFiles(event.dataTransfer));
  });
  return h("details", { className: "card", id: "upload", open: true },
    h("summary", {}, "Add images"), zone, result);
}

"""Benchmark the data browser on 10,000 images: how long its first page takes to serve.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/web_browse.py [--images 10000] [--repeats 7]

It makes a fresh workspace with one classification project of ``--images``
generated 64 x 64 grayscale PNGs (half of them labeled, each with a station in
its metadata), serves it with uvicorn on 127.0.0.1 and times over HTTP:

* ``first_page``: what the data browser page fetches before it can draw, in
  order: the page's HTML, the project, its metadata keys and the first page
  of 60 images, as the page does with no filter and with a metadata filter;
* ``browse``: the page-of-images route alone, for the first and the last page;
* ``thumbnails_cold`` and ``thumbnails_warm``: the 60 thumbnails of the first
  page, one after another, before and after they are cached on disk.

Times are the median of ``--repeats`` runs, in seconds, and the 1-minute load
average is recorded, because other work on the machine slows every step.
Results go to ``benchmarks/web_browse.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))

from conftest import Server  # noqa: E402 - the tests' loopback server, reused so both serve the same way

from defectlab.workspace import Workspace  # noqa: E402
from defectlab.workspace.schema import Annotation, DefectClass, Image as ImageRow  # noqa: E402

PAGE_SIZE = 60


def fill_project(workspace: Workspace, count: int) -> None:
    """Store ``count`` distinct 64x64 PNGs and their rows directly, much faster than an import of files."""
    workspace.create_project("large", "classification", ["scratch", "dent"])
    generator = np.random.default_rng(0)
    with workspace.session() as session:
        project = workspace.get_project(session, "large")
        classes = {c.name: c for c in session.query(DefectClass).filter_by(project_id=project.id)}
        for number in range(count):
            pixels = generator.integers(90, 110, size=(64, 64), dtype=np.uint8)
            stream = io.BytesIO()
            Image.fromarray(pixels).save(stream, format="PNG", compress_level=1)
            digest = workspace.blobs.put(stream.getvalue())
            row = ImageRow(project_id=project.id, path=f"line{number % 4}/{number:05d}.png", sha256=digest,
                           format="PNG", width=64, height=64, channels=1, bit_depth=8,
                           meta={"station": f"S{number % 7}", "lot": str(number // 100)})
            if number % 2 == 0:
                name = ("ok", "scratch", "dent")[number % 3]
                row.annotations.append(Annotation(defect_class=classes[name], labeler="import", kind="class"))
            session.add(row)


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def first_page(client: httpx.Client, query: str) -> None:
    for path in ("/projects/large", "/api/projects/large", "/api/projects/large/metadata",
                 f"/api/projects/large/browse?page_size={PAGE_SIZE}{query}"):
        client.get(path).raise_for_status()


def measure(url: str, repeats: int, count: int) -> dict:
    with httpx.Client(base_url=url, timeout=60) as client:
        page = client.get(f"/api/projects/large/browse?page_size={PAGE_SIZE}").json()
        ids = [image["id"] for image in page["images"]]
        last = page["pages"]

        def thumbnails() -> None:
            for image_id in ids:
                client.get(f"/api/projects/large/images/{image_id}/thumbnail").raise_for_status()

        results = {
            "first_page": median_seconds(lambda: first_page(client, ""), repeats),
            "first_page_station_filter": median_seconds(lambda: first_page(client, "&key=station&value=S3"), repeats),
            "first_page_unlabeled_filter": median_seconds(lambda: first_page(client, "&labeled=false"), repeats),
            "browse_first": median_seconds(
                lambda: client.get(f"/api/projects/large/browse?page_size={PAGE_SIZE}").raise_for_status(), repeats),
            "browse_last": median_seconds(
                lambda: client.get(f"/api/projects/large/browse?page_size={PAGE_SIZE}&page={last}")
                .raise_for_status(), repeats),
            "browse_by_label": median_seconds(
                lambda: client.get(f"/api/projects/large/browse?page_size={PAGE_SIZE}&sort=label")
                .raise_for_status(), repeats),
        }
        start = time.perf_counter()
        thumbnails()
        results["thumbnails_cold"] = round(time.perf_counter() - start, 4)
        results["thumbnails_warm"] = median_seconds(thumbnails, repeats)
    results["images"] = count
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="Images in the project.")
    parser.add_argument("--repeats", type=int, default=7, help="Runs per timing; the median is kept.")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace.open(Path(folder) / "workspace")
        start = time.perf_counter()
        fill_project(workspace, options.images)
        filled = time.perf_counter() - start
        server = Server(workspace).start()
        try:
            load_before = os.getloadavg()[0]
            results = measure(server.url, options.repeats, options.images)
            load_after = os.getloadavg()[0]
        finally:
            server.stop()
            workspace.close()

    record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "python": platform.python_version(), "seconds_to_fill": round(filled, 1),
              "load_average_before": load_before, "load_average_after": load_after, "seconds": results}
    target = Path(__file__).with_name("web_browse.json")
    target.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

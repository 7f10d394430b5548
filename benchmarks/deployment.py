"""Deployment benchmarks: ONNX Runtime against PyTorch, and the HTTP server under load on loopback.

``run_benchmarks.py`` calls these for the models it trains; see its docstring for
the command. Every figure comes from the same held-out files for both engines.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from defectlab.deployment.bundle import SCORE_TOLERANCE, export_bundle
from defectlab.evaluation.runner import load_stored_model
from defectlab.prediction.predictor import Predictor
from defectlab.runtime import load_bundle
from defectlab.workspace import Workspace

REPOSITORY = Path(__file__).resolve().parents[1]
CLIENTS = (1, 4, 16)
REQUESTS_PER_CLIENT = 12
"""Each load level sends this many requests per client, so 12, 48 and 192 requests in all."""
LEVEL_SECONDS = 120.0
"""A load level stops sending new requests after this many seconds."""


def compare_engines(workspace: Workspace, model_id: int, source: Path, bundle: Path) -> dict[str, Any]:
    """Export the model, then time both engines one file at a time on the same held-out files.

    Returns milliseconds per image for each engine (decode included, model
    loaded), the speed-up, and the largest score difference between them.
    """
    artifact, images = load_stored_model(workspace, model_id)
    files = [source / image.path for image in images if image.split == "test"][:60]
    started = time.perf_counter()
    export_bundle(artifact, bundle, source={"model_id": model_id})
    export_seconds = time.perf_counter() - started
    engines = {"pytorch": Predictor.from_artifact(artifact), "onnxruntime": load_bundle(bundle)}
    timings, scores = {}, {}
    for name, predictor in engines.items():
        list(predictor.predict_files(files[:2]))
        started = time.perf_counter()
        scores[name] = [prediction.score for path in files for prediction in predictor.predict_files([path])]
        timings[name] = (time.perf_counter() - started) / len(files) * 1000
    differences = [abs(a - b) for a, b in zip(scores["pytorch"], scores["onnxruntime"])]
    return {
        "images": len(files),
        "export_seconds": round(export_seconds, 1),
        "ms_per_image": {name: round(value, 1) for name, value in timings.items()},
        "onnxruntime_speedup": round(timings["pytorch"] / timings["onnxruntime"], 2),
        "max_score_difference": max(differences),
        "score_tolerance": SCORE_TOLERANCE,
    }


def load_test(bundle: Path, files: list[Path]) -> dict[str, Any]:
    """Serve the bundle with ``defectlab serve`` on loopback and send requests at 1, 4 and 16 clients.

    Every response is checked against the bundle's own prediction of that file:
    a response with another file's name or score counts as mixed up.
    """
    names = [f"{index:04d}_{path.name}" for index, path in enumerate(files)]
    expected = {name: prediction.score for name, prediction in zip(names, load_bundle(bundle).predict_sources(files))}
    port = _free_port()
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY / "src")}
    server = subprocess.Popen([sys.executable, "-m", "defectlab", "serve", str(bundle), "--port", str(port)],
                              env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url)
        return {"server": "defectlab serve (uvicorn, ONNX bundle)", "images": len(files),
                "levels": [_level(url, list(zip(names, files)), expected, clients) for clients in CLIENTS]}
    finally:
        server.terminate()
        server.wait(timeout=30)


def _level(url: str, files: list[tuple[str, Path]], expected: dict[str, float], clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures, mixed = [], 0
    lock = threading.Lock()
    deadline = time.perf_counter() + LEVEL_SECONDS

    def client(offset: int) -> None:
        nonlocal mixed
        with httpx.Client(timeout=60.0) as session:
            for step in range(REQUESTS_PER_CLIENT):
                if time.perf_counter() > deadline:
                    return
                name, path = files[(offset * REQUESTS_PER_CLIENT + step) % len(files)]
                started = time.perf_counter()
                response = session.post(f"{url}/predict", files={"file": (name, path.read_bytes())})
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                        continue
                    latencies.append(elapsed)
                    answer = response.json()
                    if answer["path"] != name or abs(answer["score"] - expected[name]) > 1e-6:
                        mixed += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    seconds = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies) + len(failures),
        "failed": len(failures),
        "failures": failures[:3],
        "mixed_up": mixed,
        "requests_per_second": round(len(latencies) / seconds, 1),
        "latency_ms": _percentiles(latencies),
    }


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    ordered = sorted(latencies)

    def milliseconds(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

    return {"p50": milliseconds(0.50), "p90": milliseconds(0.90), "p99": milliseconds(0.99),
            "mean": round(statistics.fmean(ordered) * 1000, 1)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str) -> None:
    for _ in range(240):
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.5)
    raise RuntimeError(f"the server at {url} did not start within 2 minutes")

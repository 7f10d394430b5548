"""The command that serves a model over HTTP."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from defectlab.cli import app, echo_json, flag, open_workspace
from defectlab.commands.modeling import load_predictor
from defectlab.errors import InvalidInputError


@app.command("serve")
def serve(
    model: Annotated[str, typer.Argument(help="Model id in the workspace, a model file, or a bundle folder from "
                                              "'export-model --format onnx'.")],
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs an API key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    api_key: Annotated[Optional[str], typer.Option(
        help="Key clients send in X-API-Key (default: the DEFECTLAB_API_KEY environment variable).")] = None,
    max_request_mb: Annotated[float, typer.Option(help="Maximum request body size, in MiB.")] = 64.0,
    max_pixels: Annotated[int, typer.Option(help="Maximum image size, in pixels.")] = 64_000_000,
    max_batch: Annotated[int, typer.Option(help="Maximum number of images in one batch request.")] = 64,
    capture: Annotated[Optional[str], typer.Option(
        help="Project of the workspace to record every prediction in, keeping the images worth labeling.")] = None,
    capture_margin: Annotated[float, typer.Option(help="Keep every image scored within this of the threshold.")] = 0.15,
    capture_fraction: Annotated[float, typer.Option(help="Share of the other images kept, 0 to 1.")] = 0.05,
    capture_max_mb: Annotated[float, typer.Option(help="Stop keeping images once kept ones take this many MiB.")] = 2048.0,
) -> None:
    """Serve a model over HTTP: POST /predict returns the same JSON as 'defectlab predict --json' (schema at /openapi.json)."""
    import uvicorn

    from defectlab.deployment.server import LOOPBACK_HOSTS, ModelSlot, ServerSettings, create_app

    key = api_key or os.environ.get("DEFECTLAB_API_KEY") or None
    if host not in LOOPBACK_HOSTS and key is None:
        raise InvalidInputError(
            f"--host {host} lets other machines connect, so an API key is required; "
            "pass --api-key KEY or set DEFECTLAB_API_KEY"
        )
    if min(max_request_mb, max_pixels, max_batch) <= 0:
        raise InvalidInputError("--max-request-mb, --max-pixels and --max-batch must be positive")
    settings = ServerSettings(api_key=key, max_request_bytes=int(max_request_mb * (1 << 20)),
                              max_pixels=max_pixels, max_batch=max_batch)
    recorder = None
    if capture is not None:
        from defectlab.deployment.capture import Capture, CaptureRule

        rule = CaptureRule(margin=capture_margin, fraction=capture_fraction, max_bytes=int(capture_max_mb * (1 << 20)))
        recorder = Capture(open_workspace(), capture, rule)
    application = create_app(ModelSlot(load_predictor, model), settings, recorder)
    where = f", recording predictions into project {capture!r}" if capture else ""
    typer.echo(f"serving {model} on http://{host}:{port}{where} (OpenAPI schema at /openapi.json); stop with Ctrl+C", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command("drift")
def drift(
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="Project the server captured predictions into.")],
    model: Annotated[Optional[int], typer.Option(help="Model whose training images to compare with (default: newest).")] = None,
    recent: Annotated[int, typer.Option(help="How many of the latest captured predictions to compare.")] = 500,
    as_json: Annotated[bool, flag("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Warn when recent production images look different from the images the model was trained on."""
    from defectlab.deployment.drift import drift_report

    report = drift_report(open_workspace(), project, model_id=model, recent=recent)
    if as_json:
        echo_json(report)
        return
    typer.echo(f"{report['production_images']} recent production images against {report['training_images']} "
               f"training images of model {report['model_id']}")
    for row in report["statistics"]:
        mark = "DRIFT" if row["drifted"] else "ok"
        typer.echo(f"  {row['statistic']:<10} training {row['training_median']:<10.4g} production "
                   f"{row['production_median']:<10.4g} {mark}")
    for warning in report["warnings"] or ["No drift found: production images look like the training images."]:
        typer.echo(warning)

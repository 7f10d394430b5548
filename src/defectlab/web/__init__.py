"""The REST API of a workspace (FastAPI), served by ``defectlab ui``; ``defectlab.Client`` calls it from Python."""

from defectlab.web.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]

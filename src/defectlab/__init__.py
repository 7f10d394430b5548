"""defectlab: offline-first automated visual inspection."""

from defectlab.client import Client

__version__ = "0.1.0"

__all__ = ["Client", "__version__"]

"""defectlab: offline-first automated visual inspection."""

__version__ = "0.1.0"

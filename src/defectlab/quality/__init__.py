"""Data quality: how far labelers agree, and (later) suspicious labels, duplicates and imaging problems."""

"""Allow ``python -m defectlab``."""

from defectlab.cli import main

main()

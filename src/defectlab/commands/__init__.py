"""CLI commands, one module per stage of the inspection loop; importing this package registers them."""

from defectlab.commands import accounts, consensus, data, labeling, modeling, proposing, serving, web  # noqa: F401

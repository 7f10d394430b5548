"""Collect the problems one reader or writer finds, each tied to a file and line."""

from __future__ import annotations

from dataclasses import dataclass, field

from defectlab.formats.records import Problem

__all__ = ["ProblemLog", "Reporter"]


@dataclass
class ProblemLog:
    """Ordered list of problems, plus shortcuts that fill in the file and line."""

    problems: list[Problem] = field(default_factory=list)

    def at(self, path: str, line: int | None = None) -> Reporter:
        """Return a reporter whose messages name ``path`` (and ``line``)."""
        return Reporter(self, path, line)

    def error(self, path: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(path, message, "error", line))

    def warning(self, path: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(path, message, "warning", line))


@dataclass(frozen=True)
class Reporter:
    """Problem log bound to one file (and line), handed to shape and mask checks.

    ``context`` starts every message, for items a line number cannot point
    at, such as ``annotation id 17 on a.png`` in a JSON file.
    """

    log: ProblemLog
    path: str
    line: int | None = None
    context: str = ""

    def about(self, context: str) -> Reporter:
        """Return a reporter for the same file whose messages start with ``context``."""
        return Reporter(self.log, self.path, self.line, context)

    def error(self, message: str) -> None:
        self.log.error(self.path, self._text(message), self.line)

    def warning(self, message: str) -> None:
        self.log.warning(self.path, self._text(message), self.line)

    def _text(self, message: str) -> str:
        return f"{self.context}: {message}" if self.context else message

"""The progress bar when stderr is not a terminal: one line per phase."""

from __future__ import annotations

from defectlab.commands.progress import ProgressBar


def test_phases_print_once_and_done_ends_with_period(capsys) -> None:
    bar = ProgressBar()
    for done in range(3):
        bar(done, 3, "Extracting features")
    bar(3, 3, "Done")

    lines = capsys.readouterr().err.splitlines()

    assert lines == ["Extracting features...", "Done."]

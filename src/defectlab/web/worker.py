"""The worker process of one job: ``python -m defectlab.web.worker WORKSPACE JOB_ID``.

``defectlab.web.jobs.start_job`` starts it; a person does not need to. It
exits with status 0 when the job succeeded and 1 when it failed, after
recording the outcome in the job's row.
"""

from __future__ import annotations

import logging
import sys

from defectlab.errors import DefectlabError

__all__ = ["main"]

logger = logging.getLogger(__name__)


def main(arguments: list[str]) -> int:
    """Run the job named by ``arguments`` (workspace folder, job id) and return the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if len(arguments) != 2 or not arguments[1].isdigit():
        logger.error("usage: python -m defectlab.web.worker WORKSPACE JOB_ID; got %s", arguments)
        return 2

    from defectlab.web.jobs import run_job
    from defectlab.workspace import Workspace

    workspace = Workspace.open(arguments[0])
    try:
        return 0 if run_job(workspace, int(arguments[1])) else 1
    except DefectlabError as error:
        logger.error("job %s not run: %s", arguments[1], error)
        return 1
    finally:
        workspace.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

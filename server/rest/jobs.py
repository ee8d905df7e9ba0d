"""/v1/jobs: the seam where the task-queue issue adds labelling and retraining jobs.

No routes yet: nothing here pretends to run a job.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mlipserve.server.rest.security import principal

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(principal)])

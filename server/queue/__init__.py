"""Task queue: jobs with leases on huey (SQLite or Redis), workers and the job store."""

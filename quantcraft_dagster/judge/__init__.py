"""Judge I/O: upload validation, sandboxes, the load generator and the judging orchestration."""

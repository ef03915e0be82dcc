"""Developer tools behind the `cds-service` command: `fire` (call a hook) and `seed` (load data)."""

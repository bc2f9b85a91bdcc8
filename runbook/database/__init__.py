"""The database: queries and snapshots, backups (Step 3), migrations (Step 8)."""

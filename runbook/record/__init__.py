"""The deployment record: record.json and its pages, the run history, signatures, incident records (Step 21)."""

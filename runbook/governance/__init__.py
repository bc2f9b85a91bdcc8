"""Who approves and who is told: approval rules and notifications (Steps 6 and 21)."""

"""The phases' actions, by subject: the lock and the environment's state, announcements, watching,
the database, the release, the services. Each takes the `Deployment` and returns its evidence lines."""

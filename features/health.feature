@health
Feature: Health checks
  Runbook Step 10. Once the application has been started, after a deploy or a rollback, the
  release engineer makes sure it is healthy: it answers, it runs the version being released, it
  reaches its database, and every service it depends on answers.

  An application that has just started may need a moment before it answers. Its checks are tried
  again a few times, as often and as far apart as the environment file says, and the report shows
  how many tries were needed. Every check here is tagged @critical: it blocks the release when it
  fails.

  Background:
    Given the target environment

  # Basic connectivity tests

  @critical
  Scenario: Step 10 - The application answers its health check
    Then the health endpoint answers with HTTP status 200

  @critical
  Scenario: Step 10 - The application runs the version being released
    Then the status endpoint reports the version being released

  # Database connectivity

  @critical
  Scenario: Step 10 - The database answers
    Then the database answers "SELECT 1"

  # External service integration

  @critical
  Scenario: Step 10 - Every external service the application depends on answers
    Then every external dependency of the app answers

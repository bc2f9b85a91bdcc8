@rollback
Feature: Rollback verification
  Runbook Step 16, after the rollback of Step 15: the previous version is current again, the
  database schema is back where it was before the deploy, the services run, and no data written
  before the deploy was lost. The health checks that follow prove the previous version serves.

  Background:
    Given the target environment
    And the release the rollback returned to

  @critical
  Scenario: Step 16 - The previous version is restored
    Then the current link points at the release on every app host

  @critical
  Scenario: Step 16 - The previous version serves again
    Then the status endpoint reports the version rolled back to
    And the health endpoint answers with HTTP status 200

  @critical
  Scenario: Step 16 - The database is back at its previous schema
    Then the database schema is at the version recorded before the deploy

  @critical
  Scenario: Step 16 - The services run again
    Then every service runs on each of its hosts

  @critical
  Scenario: Step 16 - No data written before the deploy was lost
    Then every protected table has the rows it had before the deploy

@deploy
Feature: The release in place
  Runbook Steps 7 to 9, verified once the services have started again: the new version was
  deployed beside the previous one, the current link points at it, its configuration is in place
  with safe file modes, the database migrations ran, and the application services run.

  Background:
    Given the target environment
    And the release this deploy put in place

  @critical
  Scenario: Step 7 - The new version is deployed
    Then every app host holds the release with every file as packaged
    And the current link points at the release on every app host

  @critical
  Scenario: Step 7 - The configuration is updated
    Then every configuration file of the release is in place with its mode

  @critical
  Scenario: Step 8 - The database migrations succeeded
    Then every migration of the release is applied
    And the latest applied migrations are shown

  @critical
  Scenario: Step 9 - The application services run
    Then every service runs on each of its hosts

@monitoring
Feature: Monitoring and alerting
  Runbook Step 13. Once the release answers its health checks, the release engineer makes sure the
  monitoring system watches it: the monitoring server collects the metrics of every instance of the
  release, and it holds an alert for each of the runbook's rollback triggers (error rate, response
  time against the baseline, database connection failures, resource usage) with the thresholds the
  environment file sets.

  A server that has just started, or has just read new alerts, may need a few seconds before it has
  looked at everything once: its answers are asked for again until they settle. Every check here is
  tagged @critical: it blocks the release when it fails.

  Background:
    Given the target environment

  @critical
  Scenario: Step 13 - Monitoring is enabled
    Then the monitoring server collects the metrics of every instance of the release, each one up

  @critical
  Scenario: Step 13 - Alerts are configured
    Then every alert the environment file asks for is loaded in the monitoring server and healthy

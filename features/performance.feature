@performance
Feature: Performance verification
  Runbook Steps 11 and 20. Once the release has passed its smoke tests, the release engineer puts it
  under a short load and compares it with how the previous release performed before the deploy.

  The load goes only to the environment's own application: requests in turn to the paths the
  environment file lists, several at once, and it stops after the configured number of requests or
  the configured number of seconds, whichever comes first. It is sent once; every check below judges
  what that one load measured. Meanwhile, the memory and CPU of the application's processes are
  read on each of its hosts.

  Response time is compared with the baseline measured before the deploy; on a first deploy there
  is no baseline, and the report says so. A limit the environment file does not set is not judged:
  its check is reported as skipped, with what was measured. Every check here is tagged @critical:
  it blocks the release when it fails.

  Background:
    Given the target environment
    And the application has been under the configured load

  # Step 11: Performance tests (response time verification, load testing)

  @critical
  Scenario: Step 11 - Response time under load stays within the allowed multiple of the baseline
    Then the 95th percentile response time is within the allowed multiple of the baseline

  @critical
  Scenario: Step 11 - Error rate under load stays under the limit
    Then the share of failed requests is at most the allowed error rate

  # Step 20: Resource utilization (memory usage monitoring, CPU utilization checks)

  @critical
  Scenario: Step 20 - Memory of the app on each host stays under its limit
    Then the resident memory of the app's processes on each host is at most the limit

  @critical
  Scenario: Step 20 - CPU of the app on each host stays under its limit
    Then the CPU the app's processes used on each host is at most the limit

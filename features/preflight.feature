@preflight
Feature: Pre-flight checklist
  Runbook Steps 1 to 5. Before a release changes anything, the release engineer makes sure that
  the target environment, the deployment package, the database, the services the application
  depends on, and its security and compliance posture are ready.

  A check tagged @critical blocks the release when it fails; one tagged @advisory is reported
  without blocking. A check tagged @manual is something only a person can judge: it passes only
  on a signed attestation in the environment's attestation file.

  Background:
    Given the target environment

  # Step 1: Environment preparation

  @critical
  Scenario: Step 1 - The environment is available and accessible
    Then every host answers within its connect timeout

  @critical
  Scenario: Step 1 - Required resources are allocated
    Given the facts of every host
    Then every host has at least the required number of CPUs
    And every host has at least the required memory

  @critical
  Scenario: Step 1 - Disk space is available
    Given the facts of every host
    Then every configured mount on every host has at least the required share of free space

  @critical
  Scenario: Step 1 - Network connectivity is established
    Then every app host reaches the database server
    And every app host reaches each external service it depends on

  @critical
  Scenario: Step 1 - Security configurations are in place
    Then every required file is present with its owner and mode

  @critical
  Scenario: Step 1 - Database connections are configured
    Then the database answers "SELECT 1"

  # Step 2: Code and configuration review

  @critical
  Scenario: Step 2 - The deployment package is complete
    Given the deployment package of the requested version
    Then every file in the package manifest is present
    And every file matches its checksum in the manifest
    And the package holds no file that is not in its manifest
    And the package's VERSION file names the requested version

  @critical
  Scenario: Step 2 - The package's dependencies are resolved
    Given the deployment package of the requested version
    Then every requirement of the package is installed on every app host

  @advisory
  Scenario: Step 2 - Configuration changes are shown for review
    Then every configuration file renders with all of its secrets
    And the configuration to deploy is compared with the one deployed now

  @critical
  Scenario: Step 2 - Database schema changes are prepared
    Given the deployment package of the requested version
    Then the migrations the package will apply are listed
    And every pending migration has a down part
    And every pending migration is undone whole if it fails
    And every pending migration is safe while the previous release still serves

  # Step 3: Database preparation. The backup phase verifies every backup by restoring it into a
  # scratch database and comparing it with the database as it was dumped (the restore drill: Step 3's
  # "verify backup integrity" and Step 5's "recovery procedures tested"), and tests the migration
  # scripts by running each pending one up, down and up again on that copy (the rehearsal), before
  # anything of the environment changes.

  @critical
  Scenario: Step 3 - The database can be backed up and the backup verified
    Then the pg_dump client is not older than the database server
    And the backup folder is writable with room for a dump of the database
    And the database login may create the scratch database of the restore drill

  # Step 4: Service dependencies

  @critical
  Scenario Outline: Step 4 - <service> answer
    Then every "<role>" dependency answers

    Examples:
      | service                          | role          |
      | External API endpoints           | api           |
      | Authentication services          | auth          |
      | Message queues                   | queue         |
      | File storage folders             | storage       |
      | Cache services                   | cache         |
      | Load balancers                   | load_balancer |
      | Monitoring systems               | monitoring    |

  # Step 5: Security and compliance

  @critical
  Scenario: Step 5 - SSL certificates are valid
    Then every configured TLS certificate is valid for at least the required number of days

  @critical
  Scenario: Step 5 - Firewall rules allow only the declared ports
    Then every host listens beyond loopback only on the sockets declared for it

  @critical
  Scenario: Step 5 - Access controls are in place
    Then every secret file has its declared owner and mode
    And the release serving now refuses every request that needs a login without one

  @critical
  Scenario: Step 5 - Audit logging is enabled
    Then the release serving now writes an audit event for the smoke test user's login

  # Items only a person can judge (Steps 2 and 5)

  @critical @manual
  Scenario Outline: Step <step> - <item>
    Then a person has attested "<attestation>"

    Examples:
      | step | item                                      | attestation                  |
      | 2    | API endpoint configurations reviewed      | api-endpoints-reviewed       |
      | 2    | Security parameter updates reviewed       | security-parameters-reviewed |
      | 5    | Vulnerability scans completed             | vulnerability-scans-completed |
      | 5    | Data protection requirements met          | data-protection-reviewed     |

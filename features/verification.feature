@verification
Feature: Post-deployment verification
  Runbook Steps 11 and 12. With the release live and healthy, the release engineer walks through
  the application's core journeys as a user would: logging in, saving and reading data, uploading
  and downloading a file, and making sure the application turns away anyone who is not logged in.
  The journeys use the smoke test account of the environment file; the pages a browser checks are
  those the environment file names under `ui`.

  A check tagged @critical blocks the release when it fails. A check tagged @manual is something
  only a person can judge: it passes only on a signed attestation in the environment's attestation
  file. A check tagged @browser is made in a real browser (headless Chromium).

  A check tagged with one of the application's own journeys (message queue, cache, external API)
  runs only where the environment file lists that journey for the smoke test account; elsewhere
  it is reported as not applicable, with the reason.

  Background:
    Given the target environment

  # Step 11: Functional testing

  @critical
  Scenario: Step 11 - User authentication works
    Given the smoke test user has logged in
    Then a wrong password is refused

  @critical
  Scenario: Step 11 - Data processing works
    Given the smoke test user has logged in
    Then an item the user creates reads back the same

  @critical
  Scenario: Step 11 - File uploads and downloads work
    Given the smoke test user has logged in
    Then a file the user uploads downloads with identical content

  @critical
  Scenario: Step 11 - API endpoints refuse requests without a login
    Then every request that needs a login is refused without one

  @critical @message_queue
  Scenario: Step 11 - Message queue processing works
    Given the smoke test user has logged in
    Then a job the user submits is processed within its deadline

  @critical @cache
  Scenario: Step 11 - Cache operations work
    Given the smoke test user has logged in
    Then a value the user caches reads back the same
    And the cached value is gone once its time to live has passed

  @critical @external_api
  Scenario: Step 11 - External API calls work
    Given the smoke test user has logged in
    Then the application's call to the external API answers

  @critical
  Scenario: Step 11 - The data from before the deploy is intact
    Then every protected table that no migration of the release names has the rows it had before the deploy

  # Step 12: User acceptance testing, in a real browser (headless Chromium) at the app's pages, then the
  # items only a person can judge. Each browser check shows screenshots of what it saw.

  @critical @browser
  Scenario: Step 12 - Pages load without errors
    Then every page of the app loads in a browser with no console error

  @critical @browser
  Scenario: Step 12 - Forms submit and show their result
    Then the login form and the create form submit in a browser and show their result

  @critical @browser
  Scenario: Step 12 - Navigation functionality
    Then every navigation link of every page reaches its page

  @critical @browser
  Scenario: Step 12 - Mobile responsiveness
    Then at a phone's screen size no page scrolls sideways and the primary controls are visible

  @critical @manual
  Scenario Outline: Step 12 - <item>
    Then a person has attested "<attestation>"

    Examples:
      | item                                         | attestation                     |
      | Key business processes validated by a person | business-processes-validated    |

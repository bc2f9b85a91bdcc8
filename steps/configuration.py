"""Steps about the configuration the release will receive."""

from pytest_bdd import then

from runbook.release import configfiles
from runbook.findings import Finding, require


@then("every configuration file renders with all of its secrets")
def configuration_renders(environment, evidence):
    found = [
        Finding(f"config {f.path}", True, f"{len(configfiles.render(environment, f).splitlines())} lines, mode {f.mode}")
        for f in environment.app.config
    ]
    require(evidence.findings(found), "no configuration file is configured")


@then("the configuration to deploy is compared with the one deployed now")
def configuration_diff(environment, evidence):
    for file in environment.app.config:
        old = configfiles.deployed(environment, file)
        evidence.text(f"{file.path}: deployed -> new (secrets redacted)", configfiles.diff(environment, file, old))

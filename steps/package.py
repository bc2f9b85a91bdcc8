"""Steps about the deployment package: present, complete, unchanged, the requested version."""

from pytest_bdd import given, then

from runbook.checks import deployable
from runbook.release import package


@given("the deployment package of the requested version", target_fixture="package_contents")
def deployment_package(environment, release_version, evidence):
    path, contents = deployable.deployment_package(environment, release_version)
    evidence.text("package", deployable.describe(path, contents))
    return contents


@then("every file in the package manifest is present")
def manifest_files_present(package_contents, evidence):
    evidence.require(package.presence(package_contents))


@then("every file matches its checksum in the manifest")
def checksums_match(package_contents, evidence):
    evidence.require(package.integrity(package_contents))


@then("the package holds no file that is not in its manifest")
def nothing_unlisted(package_contents, evidence):
    evidence.require(package.unlisted_files(package_contents))


@then("the package's VERSION file names the requested version")
def version_file(package_contents, release_version, evidence):
    evidence.require([package.version_matches(package_contents, release_version)])


@then("every requirement of the package is installed on every app host")
def requirements_installed(environment, package_contents, evidence):
    evidence.require(package.requirements_met(environment, package_contents), "no host has the app role")

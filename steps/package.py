"""Steps about the deployment package: present, complete, unchanged, the requested version."""

from pytest_bdd import given, then

from runbook.release import package
from runbook.errors import CheckFailed
from runbook.findings import require


@given("the deployment package of the requested version", target_fixture="package_contents")
def deployment_package(environment, release_version, evidence):
    path = environment.app.package_dir / package.file_name(environment.app.name, release_version)
    if not path.exists():
        raise CheckFailed(f"package {path} does not exist (build it with `invoke package --version {release_version}`)")
    contents = package.read(path)
    if contents.problems:
        raise CheckFailed(f"package {path}: " + "; ".join(contents.problems))
    evidence.text("package", f"{path}\nsha256 {package.checksum(path)}\n{len(contents.manifest)} files in the manifest")
    return contents


@then("every file in the package manifest is present")
def manifest_files_present(package_contents, evidence):
    require(evidence.findings(package.presence(package_contents)))


@then("every file matches its checksum in the manifest")
def checksums_match(package_contents, evidence):
    require(evidence.findings(package.integrity(package_contents)))


@then("the package holds no file that is not in its manifest")
def nothing_unlisted(package_contents, evidence):
    require(evidence.findings(package.unlisted_files(package_contents)))


@then("the package's VERSION file names the requested version")
def version_file(package_contents, release_version, evidence):
    require(evidence.findings([package.version_matches(package_contents, release_version)]))


@then("every requirement of the package is installed on every app host")
def requirements_installed(environment, package_contents, evidence):
    require(evidence.findings(package.requirements_met(environment, package_contents)), "no host has the app role")

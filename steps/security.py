"""Steps about security and compliance: TLS certificates and items attested by a person."""

from pytest_bdd import parsers, then

from runbook.checks import attestations, tls


@then("every configured TLS certificate is valid for at least the required number of days")
def certificates_valid(environment, evidence):
    evidence.require(tls.certificates(environment))


@then(parsers.parse('a person has attested "{item}"'))
def attested(environment, item, pytestconfig, run_context, operator, evidence):
    gate = attestations.Gate(pytestconfig.getoption("release_version"), run_context and run_context.change, operator)
    evidence.attested(attestations.attest(environment, item, gate))

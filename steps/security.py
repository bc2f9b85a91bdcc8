"""Steps about security and compliance: listening sockets, secret files, logins, the audit log, TLS
certificates and items attested by a person."""

from pytest_bdd import parsers, then

from runbook.checks import attestations, security, tls


@then("every host listens beyond loopback only on the sockets declared for it")
def listening_declared(environment, evidence):
    evidence.require(security.listening(environment))


@then("every secret file has its declared owner and mode")
def secret_files(environment, evidence):
    evidence.require(security.secret_files(environment))


@then("the release serving now refuses every request that needs a login without one")
def refused_without_login(environment, evidence):
    evidence.require(evidence.checked(security.refused_without_login, environment))


@then("the release serving now writes an audit event for the smoke test user's login")
def audit_records_login(environment, evidence):
    evidence.require(evidence.checked(security.audit_records_login, environment))


@then("every configured TLS certificate is valid for at least the required number of days")
def certificates_valid(environment, evidence):
    evidence.require(tls.certificates(environment))


@then(parsers.parse('a person has attested "{item}"'))
def attested(environment, item, pytestconfig, run_context, operator, evidence):
    gate = attestations.Gate(pytestconfig.getoption("release_version"), run_context and run_context.change, operator)
    evidence.attested(attestations.attest(environment, item, gate))

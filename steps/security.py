"""Steps about security and compliance: TLS certificates and items attested by a person."""

import pytest
from pytest_bdd import parsers, then

from runbook.checks import attestations, tls
from runbook.errors import CheckFailed
from runbook.findings import require


@then("every configured TLS certificate is valid for at least the required number of days")
def certificates_valid(environment, evidence):
    if not environment.tls:
        pytest.skip(f"no TLS endpoint is configured for {environment.name}")
    days = environment.thresholds.tls_min_days
    require(evidence.findings([tls.check(endpoint, days) for endpoint in environment.tls]))


@then(parsers.parse('a person has attested "{item}"'))
def attested(environment, item, evidence):
    rules = environment.attestations
    found = attestations.find(rules.file, item)
    if found is not None:
        evidence.attested(f"{item}: {found}")
        return
    missing = f"{item!r} is not attested in {rules.file or '(no attestation file configured)'}"
    if rules.required:
        raise CheckFailed(missing)
    pytest.skip(f"{missing}; not required in {environment.name}")

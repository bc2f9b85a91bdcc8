"""invoke's usage errors are refusals: exit 2 with a message naming what is wrong, nothing run."""

import pytest


@pytest.mark.parametrize(("args", "named"), [
    (["deploy"], "did not receive required positional arguments: 'version'"),
    (["deploy", "--version", "1.0.0", "--no-such-option"], "No idea what '--no-such-option' is"),
    (["rollback", "--to"], "needed value and was not given one"),
    (["no-such-task"], "No idea what 'no-such-task' is"),
])
def test_a_usage_error_exits_2_naming_it_and_writes_no_report(invoke, tmp_path, args, named):
    result = invoke(*args)
    assert result.code == 2, result.output
    assert named in result.output and "Traceback" not in result.output
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_a_well_formed_help_request_still_exits_0(invoke):
    result = invoke("--help", "deploy")
    assert result.code == 0 and "--version" in result.output

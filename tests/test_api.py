"""The public surface: exported names, constructors and the command."""

import subprocess
import sys

import pytest

import flagstaff
from flagstaff.cli import main, parse_user


def test_all_is_sorted_and_complete():
    # (pytest may add its assertion-rewriting helpers, "@py_...", when it
    # loads flagstaff.testing as a plugin.)
    public = {name for name in dir(flagstaff)
              if not name.startswith("_") and name.isidentifier()}
    modules = {"amplitude", "batch", "cli", "client", "config", "core", "demo",
               "experiment", "openfeature", "relay", "testing"}
    assert list(flagstaff.__all__) == sorted(flagstaff.__all__)
    assert set(flagstaff.__all__) == public - modules


def test_the_core_is_compiled():
    from flagstaff.core import _core

    assert _core.__file__.endswith((".so", ".pyd"))


def test_config_is_built_from_json_only():
    with pytest.raises(TypeError, match="from_json"):
        flagstaff.Config()


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        flagstaff.Config.from_json(b"not json")
    assert issubclass(flagstaff.ConfigError, flagstaff.FlagError)


@pytest.mark.parametrize("raw", [12, None, ["f"]], ids=["int", "none", "list"])
def test_config_from_json_names_the_wrong_input_type(raw):
    with pytest.raises(flagstaff.ConfigError, match="JSON text"):
        flagstaff.Config.from_json(raw)


def test_user_equality_and_repr():
    user = flagstaff.User("u1", email="a@b.c", custom={"plan": "free"})
    assert user == flagstaff.User("u1", email="a@b.c", custom={"plan": "free"})
    assert user != flagstaff.User("u2")
    assert repr(user) == "User('u1', email='a@b.c', custom={'plan': 'free'})"
    assert user.get("plan") == "free"
    assert user.get("Email") == "a@b.c"


def test_user_custom_does_not_shadow_well_known_attributes():
    user = flagstaff.User("u1", custom={"Email": "custom@b.c"})
    assert user.get("Email") is None


def test_parse_user_reads_well_known_and_custom_attributes():
    user = parse_user("u7:plan=free,Country=NL,Email=u7@example.com")
    assert (user.identifier, user.country, user.email) == ("u7", "NL", "u7@example.com")
    assert user.custom == {"plan": "free"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_user("u7:plan")


def test_eval_command_serves_the_example_split(capsys):
    assert main(["eval"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 8
    for line in lines:
        plan, value = line.split()[1], line.split()[3]
        if plan == "plan=premium":
            assert value == "default"
        else:
            assert value in {"default", "feature1", "feature2", "feature3"}


def test_eval_command_reports_a_bad_config_file(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"f": []}')
    assert main(["eval", "--config", str(path)]) == 2
    assert "$.f" in capsys.readouterr().err


def test_module_runs_as_a_command():
    result = subprocess.run(
        [sys.executable, "-m", "flagstaff", "eval", "--json", "--user", "u1:plan=premium"],
        capture_output=True, text=True, check=True,
    )
    assert '"value": "default"' in result.stdout


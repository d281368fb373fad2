"""
``flagstaff evaluate``: Parquet and CSV in and out, row for row what
``Config.get_value`` serves, batch by batch; and its errors, each naming the
problem, with exit status 2 and no output file left behind.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from batch_users import (
    MATRICES,
    ONBOARDING_FILE,
    ONBOARDING_RAW,
    expected,
    matrix,
    random_users,
)

import flagstaff
from flagstaff import cli
from flagstaff.batch import _command, _shared, evaluate_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "client"))
from cdn import ONBOARDING_KEY, ONBOARDING_TEXT, FakeCDN, serve

ONBOARDING_KEYS = ["onboardingFeature", "premiumBadge"]


def write_users(table: pa.Table, path: Path) -> None:
    if path.name.endswith(".parquet"):
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)


def read_output(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    """An output file; CSV is read with the output's column types."""
    if path.name.endswith(".parquet"):
        return pq.read_table(path)
    convert = pa_csv.ConvertOptions(
        column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    return pa_csv.read_csv(path, convert_options=convert)


def evaluate(*args: str | Path) -> int:
    return cli.main(["evaluate", *map(str, args)])


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize(
    "name", MATRICES, ids=[m.removesuffix(".csv") for m in MATRICES]
)
def test_matrix_round_trip(tmp_path: Path, name: str, kind: str) -> None:
    raw, users, keys = matrix(name)
    config = flagstaff.Config.from_json(raw)
    (tmp_path / "config.json").write_bytes(raw)
    write_users(users, tmp_path / f"users.{kind}")

    status = evaluate(
        "--config",
        tmp_path / "config.json",
        "--users",
        tmp_path / f"users.{kind}",
        "--output",
        tmp_path / f"out.{kind}",
        "--batch-size",
        "7",
        *(part for key in keys for part in ("--key", key)),
    )

    assert status == 0
    schema = flagstaff.batch.evaluate_table(config, users.slice(0, 0), keys).schema
    out = read_output(tmp_path / f"out.{kind}", schema)
    assert out.column_names == keys
    assert out.to_pydict() == expected(config, users, keys)


@pytest.mark.parametrize(
    "name", MATRICES, ids=[m.removesuffix(".csv") for m in MATRICES]
)
def test_reading_only_the_attributes_a_key_reads(name: str) -> None:
    # Through segments and prerequisite flags too: one key at a time, the
    # columns left out change nothing.
    raw, users, keys = matrix(name)
    config = flagstaff.Config.from_json(raw)
    for key in keys:
        read = _shared.read_attributes(config, [key])
        columns = _shared.attribute_columns(users.column_names, read)
        assert columns == {name: name for name in users.column_names if name in read}
        pruned = _shared.evaluate_part(
            config, users, columns, [key], variation_ids=True
        )
        assert pruned.equals(evaluate_table(config, users, [key], variation_ids=True))


def test_keep_variation_ids_and_order(tmp_path: Path) -> None:
    users = random_users(1000)
    config = flagstaff.Config.from_json(ONBOARDING_RAW)
    write_users(users, tmp_path / "users.parquet")

    status = evaluate(
        "--config",
        ONBOARDING_FILE,
        "--users",
        tmp_path / "users.parquet",
        "--output",
        tmp_path / "out.parquet",
        "--keep",
        "Identifier",
        "--keep",
        "visits",
        "--variation-ids",
        "--key",
        "premiumBadge",
        "--key",
        "onboardingFeature",
        "--batch-size",
        "300",
        "--threads",
        "2",
    )

    assert status == 0
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == [
        "Identifier",
        "visits",
        "premiumBadge",
        "premiumBadge:variation_id",
        "onboardingFeature",
        "onboardingFeature:variation_id",
    ]
    assert out.schema.field("visits").type == pa.int64()
    assert out.schema.field("premiumBadge").type == pa.bool_()
    assert out.column("Identifier").equals(users.column("Identifier"))
    keys = ["premiumBadge", "onboardingFeature"]
    assert out.drop_columns(["Identifier", "visits"]).to_pydict() == expected(
        config, users, keys, variation_ids=True
    )
    # Written batch by batch: a row group per batch of 300 rows.
    assert pq.ParquetFile(tmp_path / "out.parquet").num_row_groups == 4


def test_csv_blocks_are_gathered_into_batches(tmp_path: Path) -> None:
    users = random_users(1000)
    write_users(users, tmp_path / "users.csv")

    status = evaluate(
        "--config",
        ONBOARDING_FILE,
        "--users",
        tmp_path / "users.csv",
        "--output",
        tmp_path / "out.parquet",
        "--batch-size",
        "300",
    )

    assert status == 0
    written = pq.ParquetFile(tmp_path / "out.parquet")
    assert [
        written.metadata.row_group(index).num_rows
        for index in range(written.num_row_groups)
    ] == [300, 300, 300, 100]
    config = flagstaff.Config.from_json(ONBOARDING_RAW)
    assert written.read().to_pydict() == expected(config, users, ONBOARDING_KEYS)


def test_default_keys_are_all_of_the_config(tmp_path: Path) -> None:
    write_users(random_users(50), tmp_path / "users.csv")
    status = evaluate(
        "--config",
        ONBOARDING_FILE,
        "--users",
        tmp_path / "users.csv",
        "--output",
        tmp_path / "out.parquet",
    )
    assert status == 0
    assert pq.read_table(tmp_path / "out.parquet").column_names == ONBOARDING_KEYS


def test_csv_cells_are_text(tmp_path: Path) -> None:
    # Guessed types would turn "007" into 7 (another percentage bucket) and
    # "NA" (Namibia) into a null.
    (tmp_path / "users.csv").write_text(
        "Identifier,Country,plan\n" + "007,NA,free\n0012,NA,\n12,,free\n" * 5
    )
    raw = json.dumps(
        {
            "p": {"s": "c2FsdA=="},
            "f": {
                "namibia": {
                    "t": 0,
                    "r": [
                        {
                            "c": [{"u": {"a": "Country", "c": 0, "l": ["NA"]}}],
                            "s": {"v": {"b": True}},
                        }
                    ],
                    "v": {"b": False},
                },
                "split": {
                    "t": 2,
                    "p": [{"p": 10, "v": {"i": i}} for i in range(10)],
                    "v": {"i": -1},
                },
            },
        }
    )
    (tmp_path / "config.json").write_text(raw)

    status = evaluate(
        "--config",
        tmp_path / "config.json",
        "--users",
        tmp_path / "users.csv",
        "--output",
        tmp_path / "out.csv",
        "--keep",
        "Identifier",
        "--keep",
        "plan",
    )

    assert status == 0
    config = flagstaff.Config.from_json(raw)
    schema = pa.schema(
        [
            ("Identifier", pa.string()),
            ("plan", pa.string()),
            ("namibia", pa.bool_()),
            ("split", pa.int64()),
        ]
    )
    out = read_output(tmp_path / "out.csv", schema)
    assert out.column("Identifier").to_pylist()[:3] == ["007", "0012", "12"]
    assert out.column("plan").to_pylist()[:3] == ["free", None, "free"]
    users = out.select(["Identifier"]).append_column(
        "Country", pa.array(["NA", "NA", None] * 5)
    )
    assert out.select(["namibia", "split"]).to_pydict() == expected(
        config, users, ["namibia", "split"]
    )
    assert len(set(out.column("split").to_pylist()[:3])) > 1


def test_compressed_csv_in_and_out(tmp_path: Path) -> None:
    users = random_users(200)
    with pa.output_stream(tmp_path / "users.csv.gz", compression="gzip") as sink:
        pa_csv.write_csv(users, sink)

    status = evaluate(
        "--config",
        ONBOARDING_FILE,
        "--users",
        tmp_path / "users.csv.gz",
        "--output",
        tmp_path / "out.csv.gz",
    )

    assert status == 0
    with pa.input_stream(tmp_path / "out.csv.gz", compression="gzip") as source:
        out = pa_csv.read_csv(source)
    config = flagstaff.Config.from_json(ONBOARDING_RAW)
    assert out.to_pydict() == expected(config, users, ONBOARDING_KEYS)


def test_identifier_column_by_another_name(tmp_path: Path) -> None:
    users = random_users(100)
    renamed = users.rename_columns(["user_id", "plan", "Country", "visits"])
    write_users(renamed, tmp_path / "users.parquet")

    status = evaluate(
        "--config",
        ONBOARDING_FILE,
        "--users",
        tmp_path / "users.parquet",
        "--output",
        tmp_path / "out.parquet",
        "--identifier",
        "user_id",
        "--keep",
        "user_id",
    )

    assert status == 0
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["user_id", *ONBOARDING_KEYS]
    config = flagstaff.Config.from_json(ONBOARDING_RAW)
    assert out.drop_columns(["user_id"]).to_pydict() == expected(
        config, users, ONBOARDING_KEYS
    )


def test_a_missing_attribute_column_is_a_missing_attribute(tmp_path: Path) -> None:
    users = random_users(100).drop_columns(["plan"])
    write_users(users, tmp_path / "users.parquet")

    assert (
        evaluate(
            "--config",
            ONBOARDING_FILE,
            "--users",
            tmp_path / "users.parquet",
            "--output",
            tmp_path / "out.parquet",
        )
        == 0
    )

    out = pq.read_table(tmp_path / "out.parquet")
    assert set(out.column("premiumBadge").to_pylist()) == {False}


def test_a_column_no_setting_reads_is_not_read(tmp_path: Path) -> None:
    # A struct is no user attribute, but no setting of the config reads it.
    users = random_users(100).append_column("extra", pa.array([{"a": 1}] * 100))
    write_users(users, tmp_path / "users.parquet")

    assert (
        evaluate(
            "--config",
            ONBOARDING_FILE,
            "--users",
            tmp_path / "users.parquet",
            "--output",
            tmp_path / "out.parquet",
        )
        == 0
    )


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_no_rows(tmp_path: Path, kind: str) -> None:
    write_users(random_users(0), tmp_path / f"users.{kind}")

    status = evaluate(
        "--config",
        ONBOARDING_FILE,
        "--users",
        tmp_path / f"users.{kind}",
        "--output",
        tmp_path / "out.parquet",
        "--keep",
        "Identifier",
    )

    assert status == 0
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.num_rows == 0
    assert out.schema == pa.schema(
        [
            ("Identifier", pa.string()),
            ("onboardingFeature", pa.string()),
            ("premiumBadge", pa.bool_()),
        ]
    )


def test_config_downloaded_with_an_sdk_key(tmp_path: Path) -> None:
    users = random_users(100)
    write_users(users, tmp_path / "users.parquet")
    app = FakeCDN()
    app.publish(ONBOARDING_KEY, ONBOARDING_TEXT)

    with serve(app) as server:
        status = evaluate(
            "--sdk-key",
            ONBOARDING_KEY,
            "--base-url",
            server.url,
            "--users",
            tmp_path / "users.parquet",
            "--output",
            tmp_path / "out.parquet",
        )

    assert status == 0
    assert len(app.requests_for(ONBOARDING_KEY)) == 1
    config = flagstaff.Config.from_json(ONBOARDING_RAW)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.to_pydict() == expected(config, users, ONBOARDING_KEYS)


def test_a_failed_download_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_users(random_users(10), tmp_path / "users.parquet")
    app = FakeCDN()
    app.fail_with(ONBOARDING_KEY, 403)

    with serve(app) as server:
        status = evaluate(
            "--sdk-key",
            ONBOARDING_KEY,
            "--base-url",
            server.url,
            "--users",
            tmp_path / "users.parquet",
            "--output",
            tmp_path / "out.parquet",
        )

    assert status == 2
    message = capsys.readouterr().err
    assert "could not download the config of SDK key" in message
    assert ONBOARDING_KEY not in message
    assert not (tmp_path / "out.parquet").exists()


def _garbage(folder: Path) -> dict[str, Path]:
    files = {
        "parquet": folder / "users.parquet",
        "csv": folder / "users.csv",
        "no_identifier": folder / "no_identifier.csv",
        "corrupt_parquet": folder / "corrupt.parquet",
        "ragged_csv": folder / "ragged.csv",
        "struct_plan": folder / "struct_plan.parquet",
        "text": folder / "users.txt",
        "bad_config": folder / "bad_config.json",
    }
    write_users(random_users(20), files["parquet"])
    write_users(random_users(20), files["csv"])
    write_users(random_users(20).drop_columns(["Identifier"]), files["no_identifier"])
    files["corrupt_parquet"].write_bytes(b"PAR1 this is no Parquet file")
    rows = "".join(f"user-{i},free\n" for i in range(100_000))
    files["ragged_csv"].write_text(f"Identifier,plan\n{rows}user-x,free,extra\n")
    pq.write_table(
        pa.table({"Identifier": ["a"], "plan": [{"x": 1}]}), files["struct_plan"]
    )
    files["text"].write_text("Identifier\nuser-1\n")
    files["bad_config"].write_text('{"f": {"x": 1}')
    return files


#: case -> (options replaced, options added, what the message says)
ERRORS = {
    "unknown users file type": (
        {"--users": "{text}"},
        [],
        "users file '{text}': unknown file type",
    ),
    "unknown output file type": (
        {"--output": "{folder}/out.xlsx"},
        [],
        "output file '{folder}/out.xlsx': unknown file type",
    ),
    "missing users file": (
        {"--users": "{folder}/nothing.parquet"},
        [],
        "cannot read users file '{folder}/nothing.parquet'",
    ),
    "corrupt parquet": (
        {"--users": "{corrupt_parquet}"},
        [],
        "cannot read users file '{corrupt_parquet}'",
    ),
    "ragged csv": (
        {"--users": "{ragged_csv}"},
        ["--batch-size", "1000"],
        "cannot read users file '{ragged_csv}': CSV parse error",
    ),
    "unknown key": (
        {},
        ["--key", "onboardingFeature", "--key", "nope"],
        "no setting 'nope' in the config; it has 'onboardingFeature', 'premiumBadge'",
    ),
    "missing column to keep": (
        {},
        ["--keep", "Email"],
        "no column 'Email' in users file '{parquet}'; it has",
    ),
    "no identifier column": (
        {"--users": "{no_identifier}"},
        [],
        "no identifier column 'Identifier' in users file '{no_identifier}'",
    ),
    "missing identifier column": (
        {},
        ["--identifier", "user_id"],
        "no identifier column 'user_id'",
    ),
    "unusable column": (
        {"--users": "{struct_plan}"},
        [],
        "column 'plan' is struct<x: int64>",
    ),
    "bad config": (
        {"--config": "{bad_config}"},
        [],
        "config '{bad_config}': not a config_v6 document",
    ),
    "missing config": (
        {"--config": "{folder}/none.json"},
        [],
        "No such file or directory",
    ),
    "missing output folder": (
        {"--output": "{folder}/no/out.csv"},
        [],
        "no folder '{folder}/no'",
    ),
    "batch size": ({}, ["--batch-size", "0"], "--batch-size is at least 1, not 0"),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    files = {name: str(path) for name, path in _garbage(tmp_path).items()}
    files["folder"] = str(tmp_path)
    replaced, added, message = ERRORS[case]
    options = {
        "--config": str(ONBOARDING_FILE),
        "--users": files["parquet"],
        "--output": str(tmp_path / "out.parquet"),
    }
    options.update({flag: value.format(**files) for flag, value in replaced.items()})
    argv = [part for option in options.items() for part in option] + added
    before = set(os.listdir(tmp_path))

    status = evaluate(*argv)

    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("flagstaff evaluate: ")
    assert message.format(**files) in err
    assert err.count("\n") == 1
    # Nothing written, not even a partial file.
    assert set(os.listdir(tmp_path)) == before


def test_a_kept_column_may_not_take_a_key_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = random_users(10).append_column("premiumBadge", pa.array(["x"] * 10))
    write_users(users, tmp_path / "users.parquet")

    status = evaluate(
        "--config",
        ONBOARDING_FILE,
        "--users",
        tmp_path / "users.parquet",
        "--output",
        tmp_path / "out.parquet",
        "--keep",
        "premiumBadge",
    )

    assert status == 2
    assert (
        "'premiumBadge' to keep has the name of an output column"
        in capsys.readouterr().err
    )


def test_base_url_needs_an_sdk_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        evaluate(
            "--config",
            ONBOARDING_FILE,
            "--base-url",
            "http://127.0.0.1:1",
            "--users",
            "u.csv",
            "--output",
            "o.csv",
        )
    assert exit_.value.code == 2
    assert "--base-url goes with --sdk-key" in capsys.readouterr().err


def test_without_pyarrow_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(
        cli.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyarrow" else real(name, *a),
    )

    status = evaluate(
        "--config", ONBOARDING_FILE, "--users", "u.csv", "--output", "o.csv"
    )

    assert status == 2
    assert "pip install 'flagstaff[arrow]'" in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_users(random_users(1000), tmp_path / "users.parquet")
    argv = [
        "--config",
        str(ONBOARDING_FILE),
        "--users",
        str(tmp_path / "users.parquet"),
        "--output",
        str(tmp_path / "out.parquet"),
        "--batch-size",
        "100",
    ]
    monkeypatch.setattr(_command.Progress, "interval", 0.0)

    assert evaluate(*argv) == 0
    assert capsys.readouterr().err == ""

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert evaluate(*argv) == 0
    lines = terminal.getvalue()
    assert lines.count("\r") >= 10
    assert lines.endswith("\n")
    last = lines.rstrip("\n").rsplit("\r", 1)[-1]
    assert last.startswith("1,000 of 1,000 rows (100%), ")
    assert "rows/s" in last


def test_the_command_runs_as_a_program(tmp_path: Path) -> None:
    users = random_users(100)
    write_users(users, tmp_path / "users.csv")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flagstaff",
            "evaluate",
            "--config",
            str(ONBOARDING_FILE),
            "--users",
            str(tmp_path / "users.csv"),
            "--output",
            str(tmp_path / "out.csv"),
            "--keep",
            "Identifier",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = pa_csv.read_csv(tmp_path / "out.csv")
    config = flagstaff.Config.from_json(ONBOARDING_RAW)
    table = evaluate_table(config, users)
    assert out.drop_columns(["Identifier"]).equals(table)

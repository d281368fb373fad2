"""
ConfigCat's 12 cross-SDK test matrices, against both stored config snapshots
(kotlin-sdk and go-sdk) and, for the first 7, the legacy v1 key's config.

Each test checks every cell of one (matrix, snapshot) pair and reports all
mismatching cells at once.
"""

import pytest

import configcat_data as data

INDEX = data.read_json("configs_v6/index.json")

#: matrix -> legacy v1 SDK key re-using the same CSV (MANIFEST.md)
LEGACY_KEYS = {
    "testmatrix.csv": "PKDVCLf-Hq-h-kCzMp-L7Q/psuH7BGHoUmdONrzzUOY7A",
    "testmatrix_semantic.csv": "PKDVCLf-Hq-h-kCzMp-L7Q/BAr3KgLTP0ObzKnBTo5nhA",
    "testmatrix_semantic_2.csv": "PKDVCLf-Hq-h-kCzMp-L7Q/q6jMCFIp-EmuAfnmZhPY7w",
    "testmatrix_number.csv": "PKDVCLf-Hq-h-kCzMp-L7Q/uGyK3q9_ckmdxRyI7vjwCw",
    "testmatrix_sensitive.csv": "PKDVCLf-Hq-h-kCzMp-L7Q/qX3TP2dTj06ZpCCT1h_SPA",
    "testmatrix_segments_old.csv": "PKDVCLf-Hq-h-kCzMp-L7Q/LcYz135LE0qbcacz2mgXnA",
    "testmatrix_variationId.csv": "PKDVCLf-Hq-h-kCzMp-L7Q/nQ5qkhRAUEa6beEyyrVLBA",
}

#: the total number of cells per matrix (MANIFEST.md), so that a short read fails
CHECKS = {
    "testmatrix.csv": 15180,
    "testmatrix_semantic.csv": 210,
    "testmatrix_semantic_2.csv": 94,
    "testmatrix_number.csv": 50,
    "testmatrix_sensitive.csv": 14,
    "testmatrix_segments_old.csv": 40,
    "testmatrix_variationId.csv": 28,
    "testmatrix_comparators_v6.csv": 690,
    "testmatrix_segments.csv": 20,
    "testmatrix_prerequisite_flag.csv": 76,
    "testmatrix_and_or.csv": 56,
    "testmatrix_unicode.csv": 286,
}

VARIATION_MATRIX = "testmatrix_variationId.csv"


def _cases():
    for matrix in sorted(INDEX):
        stem = matrix.removesuffix(".csv")
        entry = INDEX[matrix]
        yield pytest.param(matrix, entry["config"], id=f"{stem}-kotlin")
        yield pytest.param(matrix, data.go_config(entry["sdkKey"]), id=f"{stem}-go")
        if matrix in LEGACY_KEYS:
            legacy = data.go_config(LEGACY_KEYS[matrix])
            yield pytest.param(matrix, legacy, id=f"{stem}-go-legacy")


def test_every_matrix_is_covered(configcat_data):
    stored = sorted(p.name for p in (configcat_data / "matrix").glob("*.csv"))
    assert stored == sorted(INDEX) == sorted(CHECKS)
    assert set(LEGACY_KEYS) <= set(INDEX)


@pytest.mark.parametrize(("matrix", "config_file"), list(_cases()))
def test_matrix(matrix, config_file):
    header, rows = data.read_matrix(matrix)
    config = data.load_config(config_file)
    types = data.setting_types(config_file)
    keys = header[4:]
    by_variation = matrix == VARIATION_MATRIX

    checked = 0
    mismatches = []
    for number, row in enumerate(rows, start=2):
        user = data.matrix_user(header, row)
        # fields beyond the header (variationId's trailing ';') are ignored
        for key, expected in zip(keys, row[4 : len(header)], strict=True):
            checked += 1
            if by_variation:
                actual = config.get_value_details(key, None, user).variation_id
                ok = actual == expected
            else:
                actual = config.get_value(key, None, user)
                ok = data.cell_matches(expected, actual, types[key])
            if not ok:
                mismatches.append(
                    f"line {number} {key}: expected {expected!r}, got {actual!r}"
                    f" (user {row[:4]!r})"
                )

    assert checked == CHECKS[matrix]
    report = "\n".join(mismatches[:50])
    assert not mismatches, f"{len(mismatches)} of {checked} cells differ:\n{report}"

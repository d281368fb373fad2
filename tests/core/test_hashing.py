"""
The core's own SHA-1 and SHA-256 against hashlib, and the percentage bucket
against the formula of the spec (§6).
"""

import hashlib
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagstaff.core._core import (
    percentage_bucket,
    sha1_digest,
    sha1_implementation,
    sha256_digest,
)

DIGESTS = [
    pytest.param(sha1_digest, hashlib.sha1, id="sha1"),
    pytest.param(sha256_digest, hashlib.sha256, id="sha256"),
]

#: every length up to 200 bytes: one, two and three blocks, with the padding
#: boundaries at 55/56/64 (and 119/120/128, 183/184/192) bytes
SHORT_LENGTHS = range(201)

#: multi-block inputs of several KB, on and off block boundaries
LONG_LENGTHS = [511, 512, 1000, 1023, 1024, 4095, 4096, 4097, 8191, 65536, 100_003]

TEXTS = [
    pytest.param("", id="empty"),
    pytest.param("a@configcat.com", id="ascii"),
    pytest.param("äöüÄÖÜçéèñışğâ¢™✓😀", id="latin-symbols-emoji"),
    pytest.param("ʄǟռƈʏ ȶɛӼȶ", id="ipa-armenian"),
    pytest.param("日本語のテキスト", id="cjk"),
    pytest.param("\U0001f600" * 16, id="emoji-64-bytes"),
    pytest.param("é" * 28, id="two-byte-56-bytes"),
    pytest.param("\u20ac" * 18 + "x", id="three-byte-55-bytes"),
]

#: characters that UTF-8 can encode (no lone surrogates)
encodable = st.text(st.characters(exclude_categories=["Cs"]))


def _pattern(length):
    return bytes((i * 31 + 7) % 256 for i in range(length))


@pytest.mark.parametrize(("digest", "reference"), DIGESTS)
def test_empty(digest, reference):
    assert digest(b"") == reference(b"").digest()


@pytest.mark.parametrize(("digest", "reference"), DIGESTS)
def test_short_lengths(digest, reference):
    for length in SHORT_LENGTHS:
        for fill in (b"a", b"\x00", b"\xff"):
            data = fill * length
            assert digest(data) == reference(data).digest(), (fill, length)
        data = _pattern(length)
        assert digest(data) == reference(data).digest(), length


@pytest.mark.parametrize(("digest", "reference"), DIGESTS)
@pytest.mark.parametrize("length", LONG_LENGTHS)
def test_multi_block(digest, reference, length):
    data = _pattern(length)

    assert digest(data) == reference(data).digest()


@pytest.mark.parametrize(("digest", "reference"), DIGESTS)
@pytest.mark.parametrize("text", TEXTS)
def test_utf8_text(digest, reference, text):
    data = text.encode("utf-8")

    assert digest(data) == reference(data).digest()


@given(data=st.binary(max_size=2048))
def test_sha1_random_bytes(data):
    assert sha1_digest(data) == hashlib.sha1(data).digest()


@given(data=st.binary(max_size=2048))
def test_sha256_random_bytes(data):
    assert sha256_digest(data) == hashlib.sha256(data).digest()


def _bucket(key, text):
    # §6: the first 7 hex digits of SHA-1(key + text), modulo 100.
    digest = hashlib.sha1((key + text).encode("utf-8")).hexdigest()
    return int(digest[:7], 16) % 100


def test_bucket_worked_example():
    # §6: SHA-1 32bd681e... -> 0x32bd681 = 53204609 -> 53204609 % 100 = 9
    key, text = "string25Cat25Dog25Falcon25Horse", "a@configcat.com"

    assert hashlib.sha1((key + text).encode()).hexdigest().startswith("32bd681")
    assert percentage_bucket(key, text) == 9


@pytest.mark.parametrize(
    ("key", "text"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("string75Cat0Dog25Falcon0Horse", "", id="empty-identifier"),
        pytest.param("string75Cat0Dog25Falcon0Horse", "12345", id="ascii"),
        pytest.param("numberToStringConversion", "0.12345", id="number-text"),
        pytest.param("unicode", "äöüÄÖÜçéèñışğâ¢™✓😀", id="unicode"),
        pytest.param("k" * 40, "x" * 200, id="long"),
    ],
)
def test_bucket_examples(key, text):
    assert percentage_bucket(key, text) == _bucket(key, text)


@given(key=encodable, text=encodable)
def test_bucket_random_text(key, text):
    bucket = percentage_bucket(key, text)

    assert 0 <= bucket < 100
    assert bucket == _bucket(key, text)


def test_portable_sha1_matches_hashlib_where_the_cpu_has_sha_extensions():
    """
    The core picks the CPU's SHA extensions at run time; the portable
    compression must agree too, so it is checked in a process forced to it.
    """
    check = (
        "import hashlib, random\n"
        "from flagstaff.core._core import *\n"
        "assert sha1_implementation() == 'portable'\n"
        "r = random.Random(7)\n"
        "for n in list(range(200)) + [1000, 4096, 10_001]:\n"
        "    data = r.randbytes(n)\n"
        "    assert sha1_digest(data) == hashlib.sha1(data).digest(), n\n"
        "    text = data.hex()[:n]\n"
        "    expected = int(hashlib.sha1(('k' + text).encode()).hexdigest()[:7], 16)\n"
        "    assert percentage_bucket('k', text) == expected % 100, n\n"
    )
    environment = dict(os.environ, FLAGSTAFF_PORTABLE_SHA1="1")
    subprocess.run([sys.executable, "-c", check], env=environment, check=True)


def test_sha1_implementation_is_reported():
    assert sha1_implementation() in {"sha-ni", "portable"}

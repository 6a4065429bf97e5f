"""The published cose-wg/Examples EdDSA vector verifies."""

from __future__ import annotations

from permitnet.protocol import public_key_from_seed, verify1

# cose-wg/Examples eddsa-examples/eddsa-sig-01.json; key: RFC 8032 section 7.1 TEST 1.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
MESSAGE = bytes.fromhex(
    "D28445A201270300A10442313154546869732069732074686520636F6E74656E742E5840"
    "7142FD2FF96D56DB85BEE905A76BA1D0B7321A95C8C4D3607C5781932B7AFB8711497DFA"
    "751BF40B58B3BCC32300B1487F3DB34085EEF013BF08F4A44D6FEF0D"
)


def test_eddsa_sig_01_verifies() -> None:
    assert verify1(MESSAGE, public_key_from_seed(SEED)) == b"This is the content."

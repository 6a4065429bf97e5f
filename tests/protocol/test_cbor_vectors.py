"""Published CBOR vectors: RFC 8949 Appendix A both ways, and cbor/test-vectors' malformed list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
import pytest

from permitnet.protocol import DecodeError, ProtocolError, decode_cbor, encode_cbor

VECTORS = Path(__file__).parent.parent / "vectors"
APPENDIX_A = json.loads((VECTORS / "cbor-rfc8949-appendix-a.json").read_text(encoding="utf-8"))
NOT_WELL_FORMED = json.loads((VECTORS / "cbor-not-well-formed.json").read_text(encoding="utf-8"))


def _value(decoded: Any) -> object:
    """Turn the vector file's JSON notation into the Python value the decoder returns."""
    if isinstance(decoded, list):
        return [_value(item) for item in decoded]
    if isinstance(decoded, dict):
        if "bytes" in decoded:
            return bytes.fromhex(decoded["bytes"])
        if "int_map" in decoded:
            return {key: _value(item) for key, item in decoded["int_map"]}
        if "map" in decoded:
            return {key: _value(item) for key, item in decoded["map"].items()}
        assert decoded == {}, decoded
        return {}
    return decoded


def _same(left: object, right: object) -> bool:
    """Equality that also requires equal types (``True == 1`` in Python, not in CBOR)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        assert isinstance(right, list)
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict):
        assert isinstance(right, dict)
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    return left == right


def test_the_vector_files_are_complete() -> None:
    # RFC 8949 Appendix A has 82 examples; cbor/test-vectors' fail.json lists 568 encodings.
    assert len(APPENDIX_A["accepted"]) + len(APPENDIX_A["rejected"]) == 82
    assert len(NOT_WELL_FORMED["hex"]) == 568
    assert len(set(NOT_WELL_FORMED["hex"])) == 568


@pytest.mark.parametrize("case", APPENDIX_A["accepted"], ids=lambda case: case["hex"])
def test_appendix_a_decodes(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    assert _same(decode_cbor(data), _value(case["decoded"]))


@pytest.mark.parametrize("case", APPENDIX_A["accepted"], ids=lambda case: case["hex"])
def test_appendix_a_encodes(case: dict[str, Any]) -> None:
    assert encode_cbor(_value(case["decoded"])).hex() == case["hex"]


@pytest.mark.parametrize("case", APPENDIX_A["accepted"], ids=lambda case: case["hex"])
def test_appendix_a_agrees_with_cbor2(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    assert decode_cbor(data) == cbor2.loads(data)


@pytest.mark.parametrize("case", APPENDIX_A["rejected"], ids=lambda case: case["hex"])
def test_appendix_a_items_the_protocol_does_not_use_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_cbor(bytes.fromhex(case["hex"]))
    assert case["reason"] in str(caught.value)


@pytest.mark.parametrize("hex_item", NOT_WELL_FORMED["hex"])
def test_not_well_formed_input_is_refused(hex_item: str) -> None:
    with pytest.raises(ProtocolError):
        decode_cbor(bytes.fromhex(hex_item), allowed_tags=frozenset(range(64)))

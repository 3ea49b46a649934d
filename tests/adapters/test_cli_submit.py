"""What `o2o submit` reads as orders: JSON lines, one JSON document
(pretty-printed, as the shipped examples are) or an array of them; a
failure is named by its line or its item."""
from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec
import pytest

from adapters.cli_submit import NotJson, orders

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "order.json"
ORDER = {"channel": "app", "external_id": "A-1", "lines": [{"sku": "SAN-001", "qty": 1}], "lat": 31.2, "lon": 121.5}


def read(text: str) -> list[tuple[str, int, dict]]:
    return [(key, n, msgspec.json.decode(payload)) for key, n, payload in orders(io.StringIO(text))]


def test_json_lines_are_one_order_a_line_numbered_by_line_blank_lines_skipped():
    second = {**ORDER, "external_id": "A-2"}
    text = "\n" + json.dumps(ORDER) + "\n\n" + json.dumps(second) + "\n" + '{"channel": 1}\n'
    assert read(text) == [("line", 2, ORDER), ("line", 4, second), ("line", 5, {"channel": 1})]


def test_the_shipped_pretty_printed_example_is_one_order():
    assert read(EXAMPLE.read_text()) == [("item", 1, json.loads(EXAMPLE.read_text()))]


def test_an_array_of_orders_pretty_printed_or_on_one_line_is_one_order_per_item():
    many = [ORDER, {**ORDER, "external_id": "A-2"}, {"channel": 1}]
    for text in (json.dumps(many, indent=2), json.dumps(many)):
        assert read(text) == [("item", 1, many[0]), ("item", 2, many[1]), ("item", 3, many[2])]


def test_a_document_that_is_not_json_is_one_error_naming_its_line():
    text = "\n" + json.dumps(ORDER, indent=2).replace('"lat"', "lat", 1)
    with pytest.raises(NotJson) as e:
        read(text)
    bad = text.splitlines().index(next(x for x in text.splitlines() if "lat:" in x)) + 1
    assert e.value.line == bad and f"line {bad}" in e.value.description and "not valid JSON" in e.value.description


def test_json_lines_whose_first_line_is_bad_are_still_answered_line_by_line():
    text = "{not json\n" + json.dumps(ORDER) + "\n"
    assert [(key, n) for key, n, _ in orders(io.StringIO(text))] == [("line", 1), ("line", 2)]


def test_empty_input_has_no_orders():
    assert read("") == read("\n  \n") == []

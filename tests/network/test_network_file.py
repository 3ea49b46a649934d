"""Network files: the sample is valid and of the advertised size; a bad file
is refused with the field and the reason; JSON and TOML say the same."""
from __future__ import annotations

import json

import msgspec
import pytest

from adapters.cli import main
from engine.network_file import SAMPLE_NETWORK, NetworkFileError, load_network, load_sample
from simulations.network_gen import CitySpec, generate


def test_the_sample_city_has_60_stores_2_kitchens_and_200_skus_with_stock():
    network = load_sample()
    kinds = [n.kind for n in network.nodes]
    assert kinds.count("store") == 60 and kinds.count("kitchen") == 2
    assert len(network.skus) == 200 and all(s.price > 0 for s in network.skus)
    assert all(network.stock[n.id] for n in network.nodes)


def sample_dict() -> dict:
    return json.loads(SAMPLE_NETWORK.read_text())


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["nodes"][3].update(lat=95.0), "$.nodes[3].lat", "<= 90"),
    (lambda d: d["nodes"][1].update(capacity_per_slot="ten"), "$.nodes[1].capacity_per_slot", "Expected `int`"),
    (lambda d: d["nodes"][2].update(colour="red"), "$.nodes[2]", "unknown field `colour`"),
    (lambda d: d["nodes"][4].update(id=d["nodes"][0]["id"]), "$.nodes[4].id", "duplicate node id"),
    (lambda d: d["nodes"][0].update(hours=[{"opens": "22:00", "closes": "07:00"}]), "$.nodes[0].hours[0]", "before closes"),
    (lambda d: d["stock"]["S001"].update({"NOPE-1": 3}), "$.stock.S001.NOPE-1", "unknown sku"),
    (lambda d: d["nodes"][0].pop("lat"), "$.nodes[0]", "missing required field `lat`"),
])
def test_a_bad_network_file_is_refused_naming_the_field(tmp_path, change, field, words):
    data = sample_dict()
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(NetworkFileError) as e:
        load_network(path)
    assert e.value.field == field and words in e.value.reason
    assert str(path) in str(e.value)


def test_a_file_that_is_not_json_is_refused_with_the_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x", "nodes": [')
    with pytest.raises(NetworkFileError, match="not valid JSON"):
        load_network(path)


def test_toml_and_json_files_give_the_same_network(tmp_path):
    network = generate(CitySpec(stores=4, kitchens=1, skus=5, seed=1))
    data = msgspec.to_builtins(network)
    (tmp_path / "n.json").write_text(json.dumps(data))
    toml = [f'name = "{network.name}"']
    for n in data["nodes"]:
        toml.append("[[nodes]]")
        toml += [f"{k} = {json.dumps(v)}" for k, v in n.items() if k != "hours" and v is not None]
        toml.append("hours = [" + ", ".join(f'{{opens = "{w["opens"]}", closes = "{w["closes"]}"}}' for w in n["hours"]) + "]")
    for s in data["skus"]:
        toml.append("[[skus]]")
        toml += [f"{k} = {json.dumps(v)}" for k, v in s.items()]
    toml.append("[stock]")
    for node, lines in data["stock"].items():
        toml.append(f"{node} = {{" + ", ".join(f'"{k}" = {v}' for k, v in lines.items()) + "}")
    (tmp_path / "n.toml").write_text("\n".join(toml))
    assert load_network(tmp_path / "n.toml") == load_network(tmp_path / "n.json") == network


def test_the_generator_gives_the_same_city_for_the_same_seed():
    assert generate(CitySpec(seed=3, stores=10, skus=20)) == generate(CitySpec(seed=3, stores=10, skus=20))
    assert generate(CitySpec(seed=3, stores=10, skus=20)) != generate(CitySpec(seed=4, stores=10, skus=20))


def test_o2o_network_check_accepts_the_sample_and_refuses_a_bad_file(tmp_path, capsys):
    assert main(["network", "check", str(SAMPLE_NETWORK)]) == 0
    assert "62: 2 kitchens, 60 stores" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    data = sample_dict()
    data["nodes"][0]["lat"] = "north"
    bad.write_text(json.dumps(data))
    assert main(["network", "check", str(bad)]) == 2
    assert "$.nodes[0].lat" in capsys.readouterr().err


def test_the_committed_network_schema_is_generated_and_validates_the_sample():
    import jsonschema

    from adapters.cli_schemas import generated

    root = SAMPLE_NETWORK.parents[2]
    schema = json.loads((root / "docs/schemas/network.json").read_text())
    assert schema == generated()["network"], "regenerate with: o2o schemas"
    jsonschema.validate(sample_dict(), schema)

"""Network files: the sample is valid and of the advertised size; a bad file
is refused with the field and the reason; JSON and TOML say the same."""
from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from adapters.cli import main
from domain.errors import InvalidInput
from domain.network import Network
from engine.store.network_file import SAMPLE_NETWORK, NetworkFileError, dump_network, load_network, load_sample
from simulations.network_gen import CitySpec, generate

ROOT = Path(__file__).parents[2]
SMALL_TOML = ROOT / "docs/examples/network-small.toml"


def test_the_sample_city_has_60_stores_2_kitchens_and_200_skus_with_stock():
    network = load_sample()
    kinds = [n.kind for n in network.nodes]
    assert kinds.count("store") == 60 and kinds.count("kitchen") == 2
    assert len(network.skus) == 200 and all(s.price > 0 and s.category for s in network.skus)
    assert all(network.stock[n.id] for n in network.nodes)
    assert sum(sum(lines.values()) for lines in network.stock.values()) == 167_031


def test_the_sample_city_is_what_the_generator_makes_with_its_defaults():
    assert load_sample() == generate(CitySpec())


def test_kitchens_deliver_further_and_take_more_orders_than_any_store():
    network = load_sample()
    stores = [n for n in network.nodes if n.kind == "store"]
    for k in (n for n in network.nodes if n.kind == "kitchen"):
        assert k.modes == ["delivery"]
        assert k.delivery_radius_km > max(s.delivery_radius_km for s in stores)
        assert k.capacity_per_slot > max(s.capacity_per_slot for s in stores)
        assert min(network.stock[k.id].values()) >= 80


def sample_dict() -> dict:
    return json.loads(SAMPLE_NETWORK.read_text())


def refused(tmp_path: Path, text: str, suffix: str = ".json") -> NetworkFileError:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(NetworkFileError) as e:
        load_network(path)
    assert str(path) in str(e.value) and e.value.field in str(e.value)
    return e.value


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["nodes"][3].update(lat=95.0), "$.nodes[3].lat", "<= 90"),
    (lambda d: d["nodes"][1].update(capacity_per_slot="ten"), "$.nodes[1].capacity_per_slot", "Expected `int`"),
    (lambda d: d["nodes"][2].update(colour="red"), "$.nodes[2]", "unknown field `colour`"),
    (lambda d: d["nodes"][0].pop("lat"), "$.nodes[0]", "missing required field `lat`"),
    (lambda d: d["nodes"][0].update(kind="warehouse"), "$.nodes[0].kind", "Invalid enum value 'warehouse'"),
    (lambda d: d["nodes"][0].update(name=""), "$.nodes[0].name", "length >= 1"),
    (lambda d: d["nodes"][0].update(modes=[]), "$.nodes[0].modes", "length >= 1"),
    (lambda d: d["nodes"][0].update(hours=[]), "$.nodes[0].hours", "length >= 1"),
    (lambda d: d["nodes"][0].update(hours=[{"opens": "7:00", "closes": "23:00"}]), "$.nodes[0].hours[0].opens", "matching regex"),
    (lambda d: d["nodes"][4].update(id=d["nodes"][0]["id"]), "$.nodes[4].id", "duplicate node id"),
    (lambda d: d["nodes"][0].update(hours=[{"opens": "22:00", "closes": "07:00"}]), "$.nodes[0].hours[0]", "before closes"),
    (lambda d: d["nodes"][0].update(hours=[{"opens": "07:00", "closes": "14:00"}, {"opens": "13:00", "closes": "22:00"}]),
     "$.nodes[0].hours[1]", "overlaps $.nodes[0].hours[0]"),
    (lambda d: d["nodes"][0].update(modes=["pickup", "pickup"]), "$.nodes[0].modes", "listed twice"),
    (lambda d: d["nodes"][0].update(delivery_radius_km=0), "$.nodes[0].delivery_radius_km", "radius above 0"),
    (lambda d: d["skus"][5].update(id=d["skus"][1]["id"]), "$.skus[5].id", "duplicate sku id"),
    (lambda d: d["skus"][0].update(price=-1), "$.skus[0].price", ">= 0"),
    (lambda d: d["stock"]["S001"].update({"NOPE-1": 3}), "$.stock.S001.NOPE-1", "unknown sku"),
    (lambda d: d["stock"].update(S999={}), "$.stock.S999", "unknown node"),
    (lambda d: d["stock"]["S002"].update({"SAN-001": -4}), "$.stock.S002.SAN-001", ">= 0"),
    (lambda d: d.update(timezone="Shanghai time"), "$.timezone", "IANA"),
    (lambda d: d.update(timezone="Mars/Olympus"), "$.timezone", "IANA"),
    (lambda d: d.update(speed_kmh=0), "$.speed_kmh", "> 0"),
])
def test_a_bad_network_file_is_refused_naming_the_field(tmp_path, change, field, words):
    data = sample_dict()
    change(data)
    error = refused(tmp_path, json.dumps(data))
    assert (error.field, isinstance(error, InvalidInput)) == (field, True)
    assert words in error.reason


def test_a_file_that_is_not_json_is_refused_with_the_line_and_column(tmp_path):
    error = refused(tmp_path, '{\n  "name": "x",\n  "nodes": [,]\n}')
    assert error.field == "$" and "not valid JSON" in error.reason and "line 3, column 13" in error.reason


def test_a_truncated_json_file_is_refused_where_it_ends(tmp_path):
    assert "line 2, column 12" in refused(tmp_path, '{"name": "x",\n "nodes": [\n\n').reason


def test_a_file_that_is_not_toml_is_refused_with_the_line(tmp_path):
    error = refused(tmp_path, 'name = "x"\nnodes = []\nskus = []\n[stock]\nS1 {}\n', ".toml")
    assert "not valid TOML" in error.reason and "line 5" in error.reason


def test_a_bad_value_in_a_toml_file_names_the_field(tmp_path):
    text = SMALL_TOML.read_text().replace("lat = 31.1950", 'lat = "north"')
    assert refused(tmp_path, text, ".toml").field == "$.nodes[2].lat"


def test_a_missing_file_or_an_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(NetworkFileError, match="cannot read"):
        load_network(tmp_path / "none.json")
    assert "use .json or .toml" in refused(tmp_path, "name: x", ".yaml").reason


def toml_of(network: Network) -> str:
    """A TOML writer just for these tests (msgspec writes TOML only with tomli_w)."""
    data = msgspec.to_builtins(network)
    lines = [f"name = {json.dumps(data['name'])}"]
    for table in ("nodes", "skus"):
        for item in data[table]:
            lines.append(f"[[{table}]]")
            for k, v in item.items():
                if k == "hours":
                    v = "[" + ", ".join(f'{{opens = "{w["opens"]}", closes = "{w["closes"]}"}}' for w in v) + "]"
                    lines.append(f"hours = {v}")
                elif v is not None:
                    lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[stock]")
    for node, stock in data["stock"].items():
        lines.append(f"{node} = {{" + ", ".join(f'"{k}" = {v}' for k, v in stock.items()) + "}")
    return "\n".join(lines)


def test_toml_and_json_files_give_the_same_network(tmp_path):
    network = generate(CitySpec(stores=4, kitchens=1, skus=5, seed=1))
    (tmp_path / "n.toml").write_text(toml_of(network))
    dump_network(network, tmp_path / "n.json")
    assert load_network(tmp_path / "n.toml") == load_network(tmp_path / "n.json") == network


def test_the_small_toml_example_is_valid_and_survives_a_json_round_trip(tmp_path):
    network = load_network(SMALL_TOML)
    assert [n.kind for n in network.nodes] == ["store", "store", "store", "kitchen"]
    assert len(network.node("S003").hours) == 2 and network.node("S001").dealer == "dealer-1"
    dump_network(network, tmp_path / "small.json")
    assert load_network(tmp_path / "small.json") == network


def test_the_generator_gives_the_same_city_for_the_same_seed():
    assert generate(CitySpec(seed=3, stores=10, skus=20)) == generate(CitySpec(seed=3, stores=10, skus=20))
    assert generate(CitySpec(seed=3, stores=10, skus=20)) != generate(CitySpec(seed=4, stores=10, skus=20))


@pytest.mark.parametrize("spec", [CitySpec(stores=1, kitchens=0, skus=1, districts=1),
                                  CitySpec(stores=150, kitchens=5, skus=900, radius_km=20, districts=20, seed=2)])
def test_a_generated_city_has_the_asked_size_and_is_valid(tmp_path, spec):
    network = generate(spec)
    kinds = [n.kind for n in network.nodes]
    assert (kinds.count("store"), kinds.count("kitchen"), len(network.skus)) == (spec.stores, spec.kitchens, spec.skus)
    dump_network(network, tmp_path / "city.json")
    assert load_network(tmp_path / "city.json") == network


def test_the_sample_catalogue_has_no_two_skus_of_the_same_name():
    names = [s.name for s in load_sample().skus]
    assert len(set(names)) == len(names)


def test_the_generator_command_writes_a_file_that_loads(tmp_path):
    from simulations.network_gen import main as generate_main

    out = tmp_path / "city.json"
    assert generate_main(["--stores", "5", "--kitchens", "1", "--skus", "12", "--seed", "3", "--out", str(out)]) == 0
    assert load_network(out) == generate(CitySpec(stores=5, kitchens=1, skus=12, seed=3))


def test_o2o_network_check_accepts_the_sample_and_refuses_a_bad_file(tmp_path, capsys):
    assert main(["network", "check", str(SAMPLE_NETWORK)]) == 0
    out = capsys.readouterr().out
    assert "62: 2 kitchens, 60 stores" in out and "skus      200" in out and "167,031 units" in out
    bad = tmp_path / "bad.json"
    data = sample_dict()
    data["nodes"][0]["lat"] = "north"
    bad.write_text(json.dumps(data))
    assert main(["network", "check", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "$.nodes[0].lat" in captured.err and str(bad) in captured.err and captured.out == ""


def test_o2o_network_check_reads_toml(capsys):
    assert main(["network", "check", str(SMALL_TOML)]) == 0
    assert "4: 1 kitchen, 3 stores" in capsys.readouterr().out


def test_o2o_network_show_prints_a_row_per_node(capsys):
    assert main(["network", "show", str(SMALL_TOML)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:3] == ["id", "kind", "name"] and len(rows) == 1 + 4 + 1
    assert "07:00-14:00,16:00-22:00" in rows[3] and "24h" in rows[2]


def test_o2o_network_plot_draws_a_png(tmp_path, capsys):
    out = tmp_path / "map.png"
    assert main(["network", "plot", str(SMALL_TOML), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_committed_network_schema_is_generated_and_validates_the_examples():
    import jsonschema

    schema = json.loads((ROOT / "docs/schemas/network.json").read_text())
    assert schema == msgspec.json.schema(Network), "regenerate with: o2o schemas"
    jsonschema.validate(sample_dict(), schema)
    jsonschema.validate(msgspec.toml.decode(SMALL_TOML.read_bytes()), schema)

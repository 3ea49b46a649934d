"""The configuration: defaults in one place, a TOML file over them, the
environment over that, flags on top; bad values named by their field."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from adapters.bootstrap import build_engine
from domain import ids
from domain.commands import SignUpMember
from domain.errors import DomainError, InvalidInput
from engine.clock import SimClock
from engine.config import Config, load_config

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "o2o.toml"


def test_the_shipped_sample_says_exactly_the_defaults():
    assert load_config(SAMPLE, environ={}) == Config()


def test_the_file_then_the_environment_then_the_flags_each_win_over_the_one_before(tmp_path):
    f = tmp_path / "o2o.toml"
    f.write_text('[store]\nurl = "sqlite:///from-file.db"\n[batching]\nmax_batch = 100\nwindow_ms = 5.0\n'
                 '[engine.router]\nsolver = "greedy"\n')
    env = {"O2O_STORE": "memory:", "O2O_PHONE_SALT": "pepper"}
    config = load_config(f, environ=env, overrides={"batching": {"max_batch": 50, "window_ms": None}})
    assert config.store.url == "memory:"  # the environment over the file
    assert config.batching.max_batch == 50 and config.batching.window_ms == 5.0  # a flag not given leaves the file's
    assert config.engine.router.solver == "greedy" and config.engine.router.candidates == 8
    assert config.engine.phone_salt == "pepper"


@pytest.mark.parametrize("text, field", [
    ("[batching]\nmax_batch = 0\n", "config.batching.max_batch"),
    ("[engine.router]\nsolver = \"fastest\"\n", "config.engine.router.solver"),
    ("[engine]\naccept_timeout = 3\n", "config.engine"),
    ("[store]\nurl = 5\n", "config.store.url"),
])
def test_a_bad_value_is_refused_naming_its_field(tmp_path, text, field):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InvalidInput) as e:
        load_config(f, environ={})
    assert e.value.field == field and str(f) in e.value.reason


def test_a_missing_or_broken_file_is_one_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        load_config(tmp_path / "nope.toml", environ={})
    (tmp_path / "broken.toml").write_text("[store\n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_config(tmp_path / "broken.toml", environ={})


def test_the_phone_salt_from_the_environment_is_the_one_the_engine_hashes_with():
    config = load_config(environ={"O2O_PHONE_SALT": "s3cret-salt", "O2O_STORE": "memory:"})
    engine = build_engine(config, clock=SimClock(1_767_240_000.0))
    try:
        engine.sign_up(SignUpMember(member="m-1", node=engine.network.nodes[0].id, phone="13800000000"))
        member = engine.log.repository.get(ids.member_id("m-1"))
        assert member.phone_hash == hashlib.sha256(b"s3cret-salt13800000000").hexdigest()
        assert member.phone_hash != hashlib.sha256(("o2o-engine-dev-salt" + "13800000000").encode()).hexdigest()
    finally:
        engine.close()


def sample_rules(tmp_path: Path, effective_from: str = "2027-01-01T00:00:00+08:00", store_bp: int = 300) -> Path:
    """The sample's commented [[benefit.rules]] example, uncommented."""
    text = SAMPLE.read_text()
    block = text[text.index("# [[benefit.rules]]"):]
    toml = "\n".join(line[2:] if line.startswith("# ") else line for line in block.splitlines())
    toml = toml.replace("2027-01-01T00:00:00+08:00", effective_from).replace("store = { bp = 300", f"store = {{ bp = {store_bp}")
    f = tmp_path / "rules.toml"
    f.write_text('[store]\nurl = "memory:"\n[benefit]\n' + toml)
    return f


def test_the_sample_benefit_rules_are_published_at_start_and_a_changed_version_is_refused_naming_the_entry(tmp_path):
    config = load_config(sample_rules(tmp_path), environ={}, overrides={"store": {"url": f"sqlite:///{tmp_path}/e.db"}})
    rules = config.benefit.rules[0]
    assert rules.effective_from == 1_798_732_800.0 and rules.roles["store"].fixed == 100  # 2027-01-01 00:00 +08:00
    clock = SimClock(1_790_000_000.0)
    engine = build_engine(config, clock=clock)
    assert [v.version for v in engine.readmodels.benefit.versions] == ["R1"]
    engine.close()
    build_engine(config, clock=clock).close()  # the same version again: skipped
    changed = load_config(sample_rules(tmp_path, store_bp=400), environ={},
                          overrides={"store": {"url": f"sqlite:///{tmp_path}/e.db"}})
    with pytest.raises(DomainError) as e:
        build_engine(changed, clock=clock)
    assert e.value.field == "config.benefit.rules[0].version"


def test_a_rule_sets_time_without_its_offset_is_refused(tmp_path):
    with pytest.raises(InvalidInput) as e:
        load_config(sample_rules(tmp_path, effective_from="2027-01-01T00:00:00"), environ={})
    assert e.value.field == "config.benefit.rules[0].effective_from"


def test_the_travel_source_is_named_by_the_environment_and_a_flag_replaces_it(tmp_path):
    from adapters.cli_serve import _travel_flags

    env = {"O2O_TRAVEL_URL": "http://127.0.0.1:5000"}
    assert load_config(environ=env).travel.url == "http://127.0.0.1:5000"
    config = load_config(environ=env, overrides={"travel": _travel_flags("m.json", None)})
    assert (config.travel.matrix, config.travel.url) == ("m.json", "")


@pytest.mark.parametrize("travel, field, reason", [
    ({"matrix": "m.json", "url": "http://x"}, "config.travel", "a matrix or a url, not both"),
    ({"url": "osrm.local:5000"}, "config.travel.url", "expected str matching regex"),
    ({"timeout_s": 0}, "config.travel.timeout_s", "> 0"),
    ({"protocol": "graphhopper"}, "config.travel.protocol", "invalid enum value 'graphhopper'"),
    ({"cell_m": 10}, "config.travel.cell_m", ">= 50"),
])
def test_a_bad_travel_setting_is_refused_naming_its_field(travel, field, reason):
    with pytest.raises(InvalidInput) as e:
        load_config(environ={}, overrides={"travel": travel})
    assert e.value.field == field and reason in e.value.reason


def test_an_engine_built_with_a_travel_matrix_routes_by_it_and_a_bad_file_names_its_field(tmp_path):
    import numpy as np

    from engine.store.travel_file import TravelFileError, dump_travel_matrix
    from engine.travel import Grid, TravelMatrix

    config = load_config(environ={}, overrides={"store": {"url": "memory:"}})
    network = build_engine(config).network
    grid = Grid.around(network, 1000)
    dump_travel_matrix(TravelMatrix(grid, [n.id for n in network.nodes], np.full((len(network.nodes), grid.size), 9.0)),
                       tmp_path / "m.json")
    engine = build_engine(config.with_overrides({"travel": {"matrix": str(tmp_path / "m.json")}}))
    try:
        assert engine.router.travel.node_ids == [n.id for n in network.nodes]
    finally:
        engine.close()
    (tmp_path / "bad.json").write_text('{"grid": {"lat0": 0, "lon0": 0, "dlat": 1, "dlon": 1, "rows": 1, "cols": 1}, '
                                       '"nodes": [], "minutes": []}')
    with pytest.raises(TravelFileError) as e:
        build_engine(config.with_overrides({"travel": {"matrix": str(tmp_path / "bad.json")}}))
    assert e.value.field == "$.nodes"

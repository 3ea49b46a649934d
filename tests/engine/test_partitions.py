"""Partitions of the network: declared or computed from the overlap of
delivery areas; which partition owns a node, a point, a cell; the border share."""
from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from engine import partitions
from engine.config import Config, PartitionSettings, load_config
from engine.partitions import (border_share, cell_centre, cell_of, computed_map, cut, declared_map,
                               order_border_share, partition_map)
from engine.store.network_file import SAMPLE_NETWORK, load_network

NETWORK = load_network(SAMPLE_NETWORK)
PUXI, PUDONG = ("Xuhui", "Jing'an", "Putuo", "Hongkou"), ("Lujiazui", "Sanlin")


def test_a_geohash_cell_is_the_standard_one_and_its_centre_lies_in_it():
    assert cell_of(57.64911, 10.40744, 11) == "u4pruydqqvj"  # the reference example of the geohash format
    cell = cell_of(31.2025, 121.527, 6)
    assert cell_of(*cell_centre(cell), 6) == cell


def test_a_bad_cell_is_refused_naming_it():
    with pytest.raises(InvalidInput, match="cell: not a geohash: 'abc!'"):
        cell_centre("abc!")


def test_declared_partitions_own_their_regions_nodes_and_cells():
    pmap = declared_map(NETWORK, {"puxi": PUXI, "pudong": PUDONG})
    assert pmap.of_node("S001") == "pudong"  # Lujiazui store 1
    assert pmap.of_region("Xuhui") == "puxi"
    s001 = NETWORK.node("S001")
    assert pmap.home_region(s001.lat, s001.lon) == "Lujiazui"
    assert pmap.of_point(s001.lat, s001.lon) == pmap.of_cell(cell_of(s001.lat, s001.lon)) == "pudong"
    assert [p.nodes for p in pmap.partitions] == [46, 16]


@pytest.mark.parametrize("declared, field, reason", [
    ({"puxi": PUXI}, "config.partitions.declared", "region(s) in no partition: Lujiazui, Sanlin"),
    ({"puxi": PUXI + ("Sanlin",), "pudong": PUDONG}, "config.partitions.declared.pudong", "also in partition 'puxi'"),
    ({"puxi": PUXI, "pudong": PUDONG + ("Atlantis",)}, "config.partitions.declared.pudong", "no region 'Atlantis'"),
    ({"puxi": PUXI, "pudong": PUDONG, "empty": ()}, "config.partitions.declared.empty", "at least one region"),
])
def test_declared_partitions_must_hold_every_region_once(declared, field, reason):
    with pytest.raises(InvalidInput) as e:
        declared_map(NETWORK, declared)
    assert e.value.field == field and reason in e.value.reason


def test_two_computed_partitions_follow_the_river():
    pmap = computed_map(NETWORK, 2)
    assert {p.regions for p in pmap.partitions} == {tuple(sorted(PUXI)), tuple(sorted(PUDONG))}


def test_computed_partitions_hold_every_region_once_within_the_balance():
    for k in range(1, 7):
        pmap = computed_map(NETWORK, k, slack=0.5)
        regions = [r for p in pmap.partitions for r in p.regions]
        assert sorted(regions) == sorted({n.region for n in NETWORK.nodes}) and len(pmap.partitions) == k
        assert max(p.nodes for p in pmap.partitions) <= max(1.5 * 62 / k, 13)  # 13: the heaviest region alone


def test_more_partitions_than_regions_is_refused_naming_the_field():
    with pytest.raises(InvalidInput) as e:
        computed_map(NETWORK, 7)
    assert e.value.field == "config.partitions.count" and "7 partitions asked of 6 region(s)" in e.value.reason


def test_the_border_share_is_none_for_one_partition_and_grows_with_the_cut():
    shares = [border_share(computed_map(NETWORK, k)).share for k in (1, 2, 6)]
    assert shares[0] == 0 and 0 < shares[1] < shares[2] < 1


def test_the_local_search_finds_what_the_exhaustive_search_finds_on_the_sample(monkeypatch):
    exhaustive = {k: border_share(computed_map(NETWORK, k)).border for k in (2, 3, 4)}
    monkeypatch.setattr(partitions, "EXHAUSTIVE_MAX", 0)
    searched = {k: border_share(computed_map(NETWORK, k)).border for k in (2, 3, 4)}
    assert searched == exhaustive


def test_the_cut_keeps_regions_that_overlap_together():
    # regions 0-1 overlap on 10 points, 2-3 on 10, 1-2 on 1; equal weights, two parts
    labels = cut([0b0011, 0b0110, 0b1100], [10, 1, 10], [1, 1, 1, 1], 2, slack=0.0)
    assert labels[0] == labels[1] != labels[2] == labels[3]


def test_an_order_is_a_border_order_when_its_candidates_lie_in_two_partitions():
    pmap = declared_map(NETWORK, {"puxi": PUXI, "pudong": PUDONG})
    s001 = NETWORK.node("S001")
    lats, lons = [s001.lat, 0.0], [s001.lon, 0.0]  # the second is out of every node's reach: not counted
    share = order_border_share(pmap, lats, lons)
    assert share.points == 1 and share.border == int(len(pmap.candidate_partitions(s001.lat, s001.lon)) > 1)


def test_the_configuration_chooses_declared_over_computed():
    declared = Config().partitions.__class__(count=3, declared={"puxi": PUXI, "pudong": PUDONG})
    assert partition_map(NETWORK, declared).names == ("puxi", "pudong")
    assert len(partition_map(NETWORK, PartitionSettings(count=3)).names) == 3


def test_a_bad_partition_name_in_the_configuration_is_refused_naming_it(tmp_path):
    f = tmp_path / "o2o.toml"
    f.write_text('[partitions.declared]\n"Pu Xi" = ["Xuhui"]\n')
    with pytest.raises(InvalidInput) as e:
        load_config(f, environ={})
    assert e.value.field.startswith("config.partitions.declared")


def test_the_cell_table_names_a_region_for_every_cell_a_node_delivers_to():
    pmap = computed_map(NETWORK, 2)
    table = pmap.cell_table(5)
    assert table and set(table.values()) <= {n.region for n in NETWORK.nodes}
    s001 = NETWORK.node("S001")
    assert cell_of(s001.lat, s001.lon, 5) in table

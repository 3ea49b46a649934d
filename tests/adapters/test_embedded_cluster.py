"""An embedded cluster on free ports starts even when another process takes
one of its ports between the pick and the bind (tests run side by side)."""
from __future__ import annotations

import socket

import pytest

from adapters.embedded_nats import EmbeddedCluster


def test_a_port_taken_after_the_pick_gets_the_cluster_started_on_new_ones(tmp_path):
    cluster = EmbeddedCluster(tmp_path / "nats", size=1)
    taken = cluster.client_ports[0]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with cluster:
            assert cluster.client_ports[0] != taken
            with socket.create_connection(("127.0.0.1", cluster.client_ports[0]), timeout=2) as c:
                assert c.recv(4) == b"INFO"  # a nats-server, not the squatter


def test_given_ports_are_not_changed_when_one_is_taken(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        base = squatter.getsockname()[1]
        cluster = EmbeddedCluster(tmp_path / "nats", size=1, base_port=base)
        with pytest.raises(RuntimeError, match="n1"):
            cluster.start(timeout=5)
        assert cluster.client_ports == [base] and cluster.pids() == [None]

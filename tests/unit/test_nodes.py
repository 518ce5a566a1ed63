"""Several nodes (boshcm/cluster.py): sids that name their node, the signed hop, the choice of upstream server."""

from __future__ import annotations

import pytest

from boshcm.cluster import (
    ClusterError,
    Hop,
    HopRefusal,
    UpstreamServers,
    node_of,
    parse_nodes,
    read_secret,
    sid_factory,
    sign,
    verify,
)
from boshcm.config import ConfigError, load_config

SECRET = b"0123456789abcdef-shared"
NODES = ("a", "b")


def hop(**changes: object) -> Hop:
    values: dict[str, object] = {"timestamp": 1_000, "from_node": "b", "to_node": "a", "sid": "a.XyZ_-123",
                                 "client": "192.0.2.7", "origin": "https://quiz.example", "body": b"<body rid='1'/>"}
    values.update(changes)
    return Hop(**values)  # type: ignore[arg-type]


def check(given: Hop, signature: str, *, now: float = 1_000.0, secret: bytes = SECRET) -> HopRefusal | None:
    return verify(secret, given, signature, me="a", nodes=NODES, now=now, max_skew_seconds=30.0)


# --- sids -----------------------------------------------------------------------------------------

def test_a_sid_names_its_node_and_stays_unguessable() -> None:
    make = sid_factory("node-2")
    first, second = make(), make()
    assert first.startswith("node-2.") and node_of(first) == "node-2"
    assert first != second and len(first.partition(".")[2]) >= 32


@pytest.mark.parametrize("sid", ["plainsidwithoutnode", ".abc", "a.", "UPPER.abc", "a b.c", "x" * 40 + ".abc"])
def test_a_sid_that_names_no_valid_node_has_no_owner(sid: str) -> None:
    assert node_of(sid) is None


def test_node_table_entries_are_checked() -> None:
    assert parse_nodes(["a=http://10.0.0.1:5281", "b=http://10.0.0.2:5281/"]) == {
        "a": "http://10.0.0.1:5281", "b": "http://10.0.0.2:5281"}
    for bad in (["a"], ["A=http://h:1"], ["a=ftp://h:1"], ["a=http://h"], ["a=http://h:1", "a=http://k:2"],
                ["a=http://h:1/path"]):
        with pytest.raises(ClusterError):
            parse_nodes(bad)


def test_cluster_configuration_is_validated() -> None:
    nodes = ["a=http://127.0.0.1:5281", "b=http://127.0.0.1:5282"]
    ok = load_config(None, {"upstream.server": ["127.0.0.1:5222"], "cluster.node": "a", "cluster.nodes": nodes,
                            "cluster.secret_file": "/etc/boshcm/secret"})
    assert ok.cluster.node == "a"
    with pytest.raises(ConfigError, match=r"^cluster\.node:"):   # several nodes are off-board only
        load_config(None, {"cluster.node": "a", "cluster.nodes": nodes, "cluster.secret_file": "/s"})
    with pytest.raises(ConfigError, match=r"^cluster\.nodes:"):  # this node must be in the table
        load_config(None, {"upstream.server": ["h:1"], "cluster.node": "c", "cluster.nodes": nodes,
                           "cluster.secret_file": "/s"})
    with pytest.raises(ConfigError, match=r"^cluster\.secret_file:"):
        load_config(None, {"upstream.server": ["h:1"], "cluster.node": "a", "cluster.nodes": nodes})
    with pytest.raises(ConfigError, match=r"^upstream\.server:"):
        load_config(None, {"upstream.server": "h:1"})      # one way to write it: a list
    with pytest.raises(ConfigError, match=r"^upstream\.server\[1\]:"):
        load_config(None, {"upstream.server": ["h:1", "nohostport"]})


def test_a_secret_must_not_be_short() -> None:
    assert read_secret(b"  " + SECRET + b"\n") == SECRET
    with pytest.raises(ClusterError):
        read_secret(b"short\n")


# --- the signed hop -------------------------------------------------------------------------------

def test_a_signed_hop_from_a_known_node_is_accepted() -> None:
    given = hop()
    assert check(given, sign(SECRET, given)) is None


def test_a_hop_signed_with_another_secret_is_refused() -> None:
    given = hop()
    assert check(given, sign(b"another-secret-of-16-bytes", given)) is HopRefusal.BAD_SIGNATURE
    assert check(given, "") is HopRefusal.BAD_SIGNATURE


@pytest.mark.parametrize("field,value", [("body", b"<body rid='2'/>"), ("client", "198.51.100.1"),
                                         ("origin", "https://evil.example"), ("origin", None),
                                         ("sid", "a.other"), ("timestamp", 1_001)])
def test_a_tampered_hop_is_refused(field: str, value: object) -> None:
    signature = sign(SECRET, hop())
    assert check(hop(**{field: value}), signature) is HopRefusal.BAD_SIGNATURE


def test_a_stale_or_future_hop_is_refused() -> None:
    given = hop()
    signature = sign(SECRET, given)
    assert check(given, signature, now=1_031.0) is HopRefusal.STALE
    assert check(given, signature, now=969.0) is HopRefusal.STALE
    assert check(given, signature, now=1_030.0) is None


def test_a_hop_for_a_session_of_another_node_is_not_passed_on_again() -> None:
    for given in (hop(sid="b.XyZ"), hop(to_node="b"), hop(sid="nodeless")):
        assert check(given, sign(SECRET, given)) is HopRefusal.NOT_OURS


def test_a_hop_from_an_unknown_node_or_from_itself_is_refused() -> None:
    for given in (hop(from_node="c"), hop(from_node="a")):
        assert check(given, sign(SECRET, given)) is HopRefusal.UNKNOWN_NODE


def test_fields_cannot_be_shifted_between_each_other() -> None:
    # Length-prefixed fields: moving bytes from one field into its neighbour changes the signature.
    assert sign(SECRET, hop(client="192.0.2.7", origin="x")) != sign(SECRET, hop(client="192.0.2.7x", origin=""))


# --- upstream servers ---------------------------------------------------------------------------

A, B, C = ("10.0.0.1", 5222), ("10.0.0.2", 5222), ("10.0.0.3", 5222)


def test_new_sessions_go_round_robin() -> None:
    servers = UpstreamServers([A, B, C], down_seconds=30)
    assert [servers.candidates(0.0)[0] for _ in range(4)] == [A, B, C, A]
    assert servers.candidates(0.0) == [B, C, A]


def test_a_server_that_failed_is_skipped_for_a_while_then_tried_again() -> None:
    servers = UpstreamServers([A, B, C], down_seconds=30)
    servers.failed(A, now=10.0)
    assert servers.is_down(A, 20.0)
    assert servers.candidates(20.0) == [B, C, A]       # A last: still tried when all else fails
    assert servers.candidates(20.0) == [B, C, A]
    assert servers.candidates(20.0) == [C, B, A]
    assert servers.candidates(40.0) == [A, B, C]       # its time is up: back in turn
    servers.failed(B, now=50.0)
    servers.succeeded(B)
    assert not servers.is_down(B, 51.0)


def test_when_all_servers_failed_the_soonest_retry_comes_first() -> None:
    servers = UpstreamServers([A, B], down_seconds=30)
    servers.failed(B, now=1.0)
    servers.failed(A, now=2.0)
    assert servers.candidates(3.0) == [B, A]

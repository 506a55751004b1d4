"""The Prometheus endpoint of a real node (``--metrics``), scraped and parsed with
prometheus_client's own parser: the node's counters, peers, errors and loop times."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.harness import Cluster, free_port, wait_for

pytestmark = pytest.mark.timeout(60)


def scrape(address: str, openmetrics: bool = False) -> dict[str, list]:
    """The families of one scrape, in the classic text format or in OpenMetrics (what
    Prometheus asks for first, and parses more strictly)."""
    request = urllib.request.Request(f"http://{address}/metrics")
    if openmetrics:
        request.add_header("Accept", "application/openmetrics-text; version=1.0.0")
    with urllib.request.urlopen(request, timeout=5) as answer:
        text = answer.read().decode()
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {family.name: family.samples for family in parse(text)}


def value(families: dict[str, list], name: str, **labels: str) -> float:
    """The first sample of family ``name`` with these labels (a histogram's buckets are
    the samples named ``NAME_bucket``)."""
    for sample in families[name]:
        if labels.get("le") and sample.name != f"{name}_bucket":
            continue
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    raise AssertionError(f"no {name} {labels}")


def test_a_scrape_shows_the_node_as_its_status_does(cluster: Cluster) -> None:
    address = f"127.0.0.1:{free_port()}"
    a = cluster.start("A", metrics=address)
    b = cluster.start("B", seeds=[a])
    cluster.wait_mesh()
    with a.client() as client:
        for _ in range(5):
            client.publish("t", b"m")
    wait_for(lambda: value(scrape(address), "zdps_published") >= 5, 5, "the counters")
    families = scrape(address)
    assert value(families, "zdps_node_info", node="A", scope="default") == 1
    assert value(families, "zdps_peers", state="alive") == 1
    assert value(families, "zdps_loop_turn_seconds", le="+Inf") > 0  # a histogram family
    assert families["process_resident_memory_bytes"][0].value > 0
    assert "zdps_errors" in families and "zdps_loop_lag_seconds" in families
    strict = scrape(address, openmetrics=True)  # no clashing names, every family valid
    assert value(strict, "zdps_holding", unit="frames") == 0
    b.proc.terminate()

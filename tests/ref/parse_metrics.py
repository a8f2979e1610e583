"""Parses OpenMetrics text (stdin) with the Python prometheus_client's parser
and prints, as JSON, {family name: [[labels, value], ...]} — for
tests/metrics.rs to check every series. Fails on text it cannot parse."""
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families

out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = [[s.labels, s.value, s.name] for s in family.samples]
print(json.dumps(out))

"""Usage per caller since this process started: calls, refusals and model tokens by model, tool
and agent, for `/metrics` and `/admin/usage`. Plain counters bumped on the event loop's one
thread; the number of rows is capped so that callers (OAuth subjects are unbounded) and names
(model names come from requests) cannot grow the metrics without end."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from router_core.quota import QuotaKind

MAX_ROWS = 2000
"""Distinct (caller, kind, name) rows kept; later ones are counted under `_other`."""

OTHER = "_other"


class _Row:
    __slots__ = ("refused", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = 0
        self.refused = 0
        self.tokens = 0


class UsageBook:
    """Calls, refusals and tokens per (principal, kind, name)."""

    def __init__(self) -> None:
        self.since = time.time()
        self.rows: dict[tuple[str, str, str], _Row] = {}
        self.store_up: bool | None = None
        """Whether the counters' store answers (None: counters in memory)."""

    def row(self, principal: str, kind: QuotaKind, name: str) -> _Row:
        key = (principal, kind, name)
        found = self.rows.get(key)
        if found is None:
            if len(self.rows) >= MAX_ROWS:
                key = (OTHER, kind, OTHER)
                found = self.rows.get(key)
            if found is None:
                found = self.rows[key] = _Row()
        return found

    def collect(self) -> Iterable[Metric]:
        calls = CounterMetricFamily(
            "junction_caller_requests",
            "Calls admitted per caller (API key name or token subject) and model, MCP tool or "
            "A2A agent.",
            labels=["principal", "kind", "name"],
        )
        refused = CounterMetricFamily(
            "junction_caller_refusals",
            "Calls refused by a rate limit or quota, per caller and model, tool or agent.",
            labels=["principal", "kind", "name"],
        )
        tokens = CounterMetricFamily(
            "junction_caller_tokens",
            "Model tokens (prompt + completion, as upstreams report them) per caller and model.",
            labels=["principal", "model"],
        )
        for (principal, kind, name), row in self.rows.items():
            calls.add_metric([principal, kind, name], row.requests)
            refused.add_metric([principal, kind, name], row.refused)
            if kind == "models":
                tokens.add_metric([principal, name], row.tokens)
        families: list[Metric] = [calls, refused, tokens]
        if self.store_up is not None:
            up = GaugeMetricFamily(
                "junction_limits_store_up",
                "Whether the rate-limit counters' Redis answers (1) or not (0).",
            )
            up.add_metric([], 1 if self.store_up else 0)
            families.append(up)
        return families

    def by_principal(self) -> dict[str, dict[str, Any]]:
        """Usage as `/admin/usage` shows it: per caller, totals and per kind and name."""
        result: dict[str, dict[str, Any]] = {}
        for (principal, kind, name), row in sorted(self.rows.items()):
            entry = result.setdefault(
                principal,
                {
                    "requests": 0,
                    "refused": 0,
                    "tokens": 0,
                    "models": {},
                    "mcp_tools": {},
                    "a2a_agents": {},
                },
            )
            entry["requests"] += row.requests
            entry["refused"] += row.refused
            entry["tokens"] += row.tokens
            item: dict[str, int] = {"requests": row.requests, "refused": row.refused}
            if kind == "models":
                item["tokens"] = row.tokens
            entry[kind][name] = item
        return result


__all__ = ["MAX_ROWS", "OTHER", "UsageBook"]

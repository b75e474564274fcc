"""Exposed names: valid for LLM APIs, stable, unique, never a silent drop; and lazy imports."""

from __future__ import annotations

import re
import subprocess
import sys

from mcp_gateway.naming import assign_names, safe_name
from mcp_gateway.specs import GatewayOptions, ToolFilter

VALID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def test_prefix_always_on_collision_and_never() -> None:
    entries = [("a", "read"), ("b", "read"), ("a", "only_a")]
    assert assign_names(entries, prefix="always", separator="__") == {
        ("a", "read"): "a__read",
        ("b", "read"): "b__read",
        ("a", "only_a"): "a__only_a",
    }
    on_collision = assign_names(entries, prefix="on_collision", separator="-")
    assert on_collision == {
        ("a", "read"): "a-read",
        ("b", "read"): "b-read",
        ("a", "only_a"): "only_a",
    }
    # `never` still keeps both colliding tools: prefixing beats dropping.
    never = assign_names(entries, prefix="never", separator="__")
    assert never[("a", "only_a")] == "only_a"
    assert {never[("a", "read")], never[("b", "read")]} == {"a__read", "b__read"}


def test_long_and_invalid_names_are_valid_stable_and_distinct() -> None:
    long_a, long_b = "x" * 70 + "a", "x" * 70 + "b"
    names = assign_names(
        [("srv", long_a), ("srv", long_b), ("srv", "dotted.name"), ("srv", "dotted_name")],
        prefix="always",
        separator="__",
    )
    assert all(VALID.fullmatch(n) for n in names.values())
    assert len(set(names.values())) == 4
    assert names[("srv", long_a)] != names[("srv", long_b)]
    # A sanitised name that lands on a real one gets its hash, the real one keeps its name.
    assert names[("srv", "dotted_name")] == "srv__dotted_name"
    assert names[("srv", "dotted.name")].startswith("srv__dotted_name_")
    again = assign_names([("srv", long_a)], prefix="always", separator="__")
    assert again[("srv", long_a)] == names[("srv", long_a)]  # stable across runs and sets
    assert safe_name("fine-name_1", ("s", "fine-name_1")) == "fine-name_1"
    assert safe_name("", ("s", "")).startswith("tool_")


def test_filters() -> None:
    tools = ToolFilter(allow=("read_*", "list"), deny=("read_secret*",))
    assert tools.permits("read_file") and tools.permits("list")
    assert not tools.permits("read_secret_key") and not tools.permits("write_file")
    assert ToolFilter().permits("anything")
    options = GatewayOptions(deny=("fs/write_*", "*delete*"))
    assert options.globally_denied("fs", "write_file") and options.globally_denied(
        "x", "delete_all"
    )
    assert not options.globally_denied("other", "write_file")


def test_importing_junction_and_the_gateway_does_not_import_mcp() -> None:
    code = (
        "import sys, mcp_gateway, junction.cli, junction.modes.mcp_stdio, junction.config;"
        "from mcp_gateway import GatewayOptions, StdioUpstream;"
        "assert 'mcp' not in sys.modules, 'mcp imported eagerly';"
        "mcp_gateway.Gateway; assert 'mcp' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

# The official MCP conformance suite (npm @modelcontextprotocol/conformance), both lines: 0.1.x
# runs the 2025-11-25 scenarios, the 0.2 alphas the 2026-07-28 ones (same package name, so one
# prefix each). Its CLI needs Node >= 22 (globSync from fs); when the machine's Node is older, the
# npm package node@22 (which ships a binary) goes beside it. Sourced by .ci/run with $cache set;
# tests/test_mcp_conformance.py finds it under $JUNCTION_CI_CACHE/mcp-conformance.
# shellcheck shell=bash
mcp_conformance_pins=(
  "v1 @modelcontextprotocol/conformance@0.1.16"
  "v2 @modelcontextprotocol/conformance@0.2.0-alpha.12"
  "node node@22.23.3"
)
mcp_conformance_dir="$cache/mcp-conformance"
if [ "$(cat "$mcp_conformance_dir/.stamp" 2>/dev/null)" != "${mcp_conformance_pins[*]}" ]; then
  echo "ci: installing the MCP conformance suites"
  rm -rf "$mcp_conformance_dir"
  mkdir -p "$mcp_conformance_dir"
  for mcp_conformance_pin in "${mcp_conformance_pins[@]}"; do
    mcp_conformance_prefix="$mcp_conformance_dir/${mcp_conformance_pin%% *}"
    if [ "${mcp_conformance_pin%% *}" = node ]; then
      node_major="$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/')"
      if [ "${node_major:-0}" -ge 22 ]; then
        mkdir -p "$mcp_conformance_prefix/bin"
        ln -sf "$(command -v node)" "$mcp_conformance_prefix/bin/node"
        continue
      fi
    fi
    npm install --silent --no-audit --no-fund --prefix "$mcp_conformance_prefix" "${mcp_conformance_pin#* }"
  done
  # node@22's own binary, or the machine's when it is new enough: one path for the tests.
  if [ -x "$mcp_conformance_dir/node/node_modules/node/bin/node" ]; then
    mkdir -p "$mcp_conformance_dir/node/bin"
    ln -sf "$mcp_conformance_dir/node/node_modules/node/bin/node" "$mcp_conformance_dir/node/bin/node"
  fi
  echo "${mcp_conformance_pins[*]}" > "$mcp_conformance_dir/.stamp"
fi

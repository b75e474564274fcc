# shellcheck shell=bash
# acpx, a headless ACP client on npm (a real client that drives `junction --mode stdio` in
# tests/acp/test_acpx.py). It needs Node >= 22.13: the test runs it with the Node 22 that
# mcp-conformance.sh installs. About 13 s, once per pin.
acpx_pin="acpx@0.19.1"
acpx_dir="$cache/acpx"
if [ "$(cat "$acpx_dir/.stamp" 2>/dev/null)" != "$acpx_pin" ]; then
  echo "ci: installing $acpx_pin"
  rm -rf "$acpx_dir"
  mkdir -p "$acpx_dir"
  npm install --silent --no-audit --no-fund --prefix "$acpx_dir" "$acpx_pin"
  echo "$acpx_pin" > "$acpx_dir/.stamp"
fi
unset acpx_pin acpx_dir

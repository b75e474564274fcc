# shellcheck shell=bash
# The official ACP Python SDK with its `http` extra (httpx[http2], websockets): its Streamable HTTP
# and WebSocket clients (acp.http, acp.ws) drive Junction's remote ACP endpoint in
# tests/test_acp_remote*.py. A venv of its own beside the plain SDK peer, so the stdio tests keep
# the SDK exactly as a stdio client installs it. Reinstalled only when the pin changes.
acp_remote_spec="agent-client-protocol[http]==0.12.1"
acp_remote_dir="$cache/peers/agent-client-protocol-http"
if [ "$(cat "$acp_remote_dir/.spec" 2>/dev/null)" != "$acp_remote_spec" ]; then
  echo "ci: installing Python peer $acp_remote_spec"
  rm -rf "$acp_remote_dir"
  "${PYTHON:-python3}" -m venv "$acp_remote_dir"
  "$acp_remote_dir/bin/pip" install --quiet --quiet --disable-pip-version-check "$acp_remote_spec"
  echo "$acp_remote_spec" > "$acp_remote_dir/.spec"
fi
unset acp_remote_spec acp_remote_dir

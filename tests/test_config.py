"""Configuration: YAML loading, ${VAR} substitution, discovery, defaults, errors, redaction."""

from __future__ import annotations

import textwrap
from pathlib import Path

import platformdirs
import pytest
from pydantic import ValidationError

from junction.config import (
    API_KEY_SCOPES,
    ApiKeyConfig,
    ConfigError,
    JunctionConfig,
    RemoteMcpServerConfig,
    StdioMcpServerConfig,
    find_config_path,
    load_config,
    substitute_env,
    unnamed_key_name,
)


def write(tmp_path: Path, text: str, name: str = "junction.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(path: Path, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return info.value


def assert_clean(error: ConfigError) -> None:
    """Config errors are for humans: no traceback, no pydantic boilerplate or links."""
    text = str(error)
    assert "Traceback" not in text
    assert "pydantic" not in text
    assert "errors.pydantic.dev" not in text
    assert "For further information" not in text


# --------------------------------------------------------------------------- the brief's example

DESIGN_EXAMPLE = """\
server: {host: 127.0.0.1, port: 8765, api_keys: []}
store: {url: "sqlite:///path/junction.db"}
backends:
  local: {type: openai, url: "http://127.0.0.1:8000/v1", api_key: "${KEY:-}", models: [m1], weight: 1}
routing: {strategy: least_latency}
mcp_servers:
  time: {command: uvx, args: [mcp-server-time], env: {}}
  docs: {url: "http://127.0.0.1:9000/mcp", headers: {}}
a2a_agents:
  researcher: {url: "http://127.0.0.1:9999"}
acp: {default_model: m1}
"""


def test_design_example_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DESIGN_EXAMPLE), {})
    assert config.server.port == 8765
    assert config.store.url == "sqlite:///path/junction.db"
    assert config.store.sqlite_path == "path/junction.db"
    local = config.backends["local"]
    assert (local.type, local.url, local.api_key, local.models) == (
        "openai",
        "http://127.0.0.1:8000/v1",
        "",
        ["m1"],
    )
    assert isinstance(config.mcp_servers["time"], StdioMcpServerConfig)
    assert config.mcp_servers["time"].args == ["mcp-server-time"]
    docs = config.mcp_servers["docs"]
    assert isinstance(docs, RemoteMcpServerConfig)
    assert docs.transport == "streamable_http"
    assert config.a2a_agents["researcher"].url == "http://127.0.0.1:9999"
    assert config.acp.default_model == "m1"
    assert config.routing.strategy == "least_latency"


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "# nothing configured yet\n"), {"OPENAI_API_KEY": "x"})
    assert config.server.host == "127.0.0.1"
    assert config.backends == {}  # a file is authoritative: env backends only without one


def test_empty_section_means_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "mcp_servers:\n  # time: {command: uvx}\nserver:\n"), {})
    assert config.mcp_servers == {}
    assert config.server.port == 8765


# --------------------------------------------------------------------------- substitution


def test_substitution_with_and_without_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        server:
          port: "${PORT}"
          api_keys: ["${K1}", "${K2:-fallback}", "${EMPTY:-used-when-empty}", "${K1:-unused}"]
        backends:
          local:
            type: openai
            url: "http://${HOST:-127.0.0.1}:${BPORT:-8000}/v1"
            api_key: "pre-${K1}-post"
        """,
    )
    config = load_config(path, {"PORT": "9001", "K1": "one", "EMPTY": ""})
    assert config.server.port == 9001  # a substituted string still validates as an int
    assert config.server.api_keys == ["one", "fallback", "used-when-empty", "one"]
    assert config.backends["local"].url == "http://127.0.0.1:8000/v1"
    assert config.backends["local"].api_key == "pre-one-post"


def test_dollar_dollar_escapes_a_literal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        mcp_servers:
          t: {command: sh, args: ["-c", "echo $${HOME} ${X} $$HOME $x"]}
        """,
    )
    config = load_config(path, {"X": "ex", "HOME": "/should/not/appear"})
    server = config.mcp_servers["t"]
    assert isinstance(server, StdioMcpServerConfig)
    assert server.args == ["-c", "echo ${HOME} ex $$HOME $x"]


def test_substituted_values_are_not_parsed_or_expanded_again() -> None:
    tree = {"a": "${V}", "b": ["${W}"], "n": 5, "flag": True}
    value = "x: [1, 2\n- ${OTHER}"
    result, errors = substitute_env(tree, {"V": value, "W": "$${Z}", "OTHER": "no"})
    assert errors == []
    assert result == {"a": value, "b": ["$${Z}"], "n": 5, "flag": True}


def test_unset_variable_is_an_error_naming_variable_and_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        mcp_servers:
          gh:
            command: gh-mcp
            args: ["--verbose", "${GH_FLAGS}"]
            env: {GITHUB_TOKEN: "${GITHUB_TOKEN}"}
        """,
    )
    error = load_error(path, {"UNRELATED": "1"})
    assert error.lines == [
        f"{path}: mcp_servers.gh.args.1: environment variable GH_FLAGS is not set "
        "(use ${GH_FLAGS:-default} to give a default)",
        f"{path}: mcp_servers.gh.env.GITHUB_TOKEN: environment variable GITHUB_TOKEN is not set "
        "(use ${GITHUB_TOKEN:-default} to give a default)",
    ]


def test_malformed_substitutions_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, 'acp: {default_model: "${1BAD}"}\nlogging: {level: "${LEVEL"}\n')
    error = load_error(path)
    assert len(error.lines) == 2
    assert error.lines[0].startswith(f"{path}: acp.default_model: invalid substitution '${{1BAD}}'")
    assert error.lines[1].startswith(f"{path}: logging.level: unterminated '${{'")


# --------------------------------------------------------------------------- discovery


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    explicit = write(tmp_path, "{}", "explicit.yaml")
    from_env = write(tmp_path, "{}", "from-env.yaml")
    env = {"JUNCTION_CONFIG": str(from_env)}

    assert find_config_path(None, {}) is None
    local = write(tmp_path, "{}")
    assert find_config_path(None, {}) == Path("junction.yaml")
    assert find_config_path(None, {}).resolve() == local.resolve()  # type: ignore[union-attr]
    assert find_config_path(None, env) == from_env
    assert find_config_path(str(explicit), env) == explicit


def test_explicit_or_env_path_that_does_not_exist_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "{}")  # a local file must not rescue a wrong explicit path
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file does not exist.*--config"):
        find_config_path(missing, {})
    with pytest.raises(ConfigError, match=r"config file does not exist.*JUNCTION_CONFIG"):
        find_config_path(None, {"JUNCTION_CONFIG": missing})
    with pytest.raises(ConfigError, match="is not a file"):
        find_config_path(str(tmp_path), {})


# --------------------------------------------------------------------------- embedded defaults


def test_embedded_defaults_without_env() -> None:
    config = load_config(None, {})
    assert config.backends == {}
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8765
    expected_db = Path(platformdirs.user_data_dir("junction")) / "junction.db"
    assert config.store.url == f"sqlite:///{expected_db}"
    assert Path(config.store.sqlite_path) == expected_db


def test_embedded_defaults_take_backends_from_env() -> None:
    config = load_config(
        None,
        {
            "OPENAI_API_KEY": "sk-openai",
            "ANTHROPIC_API_KEY": "sk-ant",
            "OLLAMA_HOST": "gpu-box:11500",
        },
    )
    assert set(config.backends) == {"openai", "anthropic", "ollama"}
    openai = config.backends["openai"]
    assert (openai.type, openai.url, openai.api_key) == (
        "openai",
        "https://api.openai.com/v1",
        "sk-openai",
    )
    anthropic = config.backends["anthropic"]
    assert (anthropic.type, anthropic.url, anthropic.api_key) == (
        "anthropic",
        "https://api.anthropic.com",
        "sk-ant",
    )
    ollama = config.backends["ollama"]
    assert (ollama.type, ollama.url, ollama.api_key) == ("ollama", "http://gpu-box:11500", "")


@pytest.mark.parametrize(
    ("ollama_host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434"),
        ("http://ollama.lan:8080", "http://ollama.lan:8080"),
        ("https://ollama.example.com", "https://ollama.example.com"),
    ],
)
def test_ollama_host_forms(ollama_host: str, url: str) -> None:
    assert load_config(None, {"OLLAMA_HOST": ollama_host}).backends["ollama"].url == url


def test_openai_base_url_and_empty_keys() -> None:
    config = load_config(
        None,
        {
            "OPENAI_API_KEY": "k",
            "OPENAI_BASE_URL": "http://localhost:8000/v1",
            "ANTHROPIC_API_KEY": "",
        },
    )
    assert set(config.backends) == {"openai"}
    assert config.backends["openai"].url == "http://localhost:8000/v1"


def test_bad_env_base_url_is_reported_against_the_environment() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "localhost:8000"})
    assert str(info.value).startswith("environment: backends.openai.url: not a valid URL")


# --------------------------------------------------------------------------- error messages


def test_bad_url_names_file_and_key_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "backends:\n  local: {type: openai, url: 'htp//nowhere'}\n")
    error = load_error(find_config_path(None, {}))  # type: ignore[arg-type]
    assert len(error.lines) == 1
    assert error.lines[0].startswith("junction.yaml: backends.local.url: not a valid URL")
    assert_clean(error)


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "http://", "not a url", "127.0.0.1:9000", "http://h:99999"]
)
def test_every_url_field_is_checked(tmp_path: Path, url: str) -> None:
    path = write(
        tmp_path,
        f"""\
        mcp_servers: {{docs: {{url: "{url}"}}}}
        a2a_agents: {{r: {{url: "{url}"}}}}
        """,
    )
    error = load_error(path)
    assert [line.split(": not a valid URL")[0] for line in error.lines] == [
        f"{path}: mcp_servers.docs.url",
        f"{path}: a2a_agents.r.url",
    ]


def test_wrong_types_name_key_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        server: {port: not-a-number}
        backends:
          local: {type: openai, url: "http://x", models: [ok, [nested]], weight: 0}
        routing: {strategy: fastest}
        """,
    )
    error = load_error(path)
    paths = [line.split(": ")[1] for line in error.lines]
    assert paths == [
        "server.port",
        "backends.local.models.1",
        "backends.local.weight",
        "routing.strategy",
    ]
    assert "valid integer" in error.lines[0]
    assert "greater than or equal to 1" in error.lines[2]
    assert "'least_latency'" in error.lines[3]
    assert_clean(error)


def test_port_range(tmp_path: Path) -> None:
    assert (
        load_error(write(tmp_path, "server: {port: 70000}"))
        .lines[0]
        .startswith(f"{tmp_path / 'junction.yaml'}: server.port: ")
    )
    assert load_config(write(tmp_path, "server: {port: 65535}"), {}).server.port == 65535


def test_unknown_keys_name_the_path_and_suggest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        serevr: {}
        server: {hots: 0.0.0.0}
        backends:
          local: {type: openai, url: "http://x", apikey: k}
        mcp_servers:
          t: {command: x, agrs: []}
          r: {url: "http://x", zzz: 1}
        """,
    )
    lines = load_error(path).lines
    assert f"{path}: server.hots: unknown key (did you mean 'host'?)" in lines
    assert f"{path}: backends.local.apikey: unknown key (did you mean 'api_key'?)" in lines
    assert f"{path}: mcp_servers.t.agrs: unknown key (did you mean 'args'?)" in lines
    assert (
        f"{path}: mcp_servers.r.zzz: unknown key "
        "(expected one of: url, headers, transport, tools, timeout, connect_timeout, "
        "legacy_session, auth)" in lines
    )
    assert f"{path}: serevr: unknown key (did you mean 'server'?)" in lines
    assert len(lines) == 5


def test_required_field_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "backends:\n  local: {url: 'http://x'}\n")
    assert load_error(path).lines == [f"{path}: backends.local.type: required"]


def test_invalid_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  host: 127.0.0.1\n  port: [8765\nstore: {}\n")
    error = load_error(path)
    assert len(error.lines) == 1
    assert error.lines[0].startswith(f"{path}:4:")
    assert ": invalid YAML: " in error.lines[0]

    tabs = write(tmp_path, "server:\n\thost: x\n", "tabs.yaml")
    assert load_error(tabs).lines[0].startswith(f"{tabs}:2:1: invalid YAML: ")


def test_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "backends: {}\nserver: {port: 1}\nserver: {port: 2}\n")
    assert load_error(path).lines == [f"{path}:3:1: invalid YAML: duplicate key 'server'"]


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("just text\n", "a str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)
    assert load_error(path).lines == [
        f"{path}: (top level): expected a mapping of sections "
        f"(server, store, backends, ...), got {kind}"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "junction.yaml"
    path.write_bytes(b"server: {host: \xff}\n")
    assert "not UTF-8" in str(load_error(path))
    assert "cannot read" in str(load_error(tmp_path))


def test_store_accepts_sqlite_and_postgresql_only(tmp_path: Path) -> None:
    url = "postgresql://junction@db:5432/junction"
    assert load_config(write(tmp_path, f"store: {{url: '{url}'}}\n"), {}).store.url == url
    path = write(tmp_path, "store: {url: 'mysql://db/junction'}\n")
    (line,) = load_error(path).lines
    assert line.startswith(f"{path}: store.url: unsupported store URL scheme 'mysql'")
    assert "postgresql://" in line


def test_log_level_is_validated(tmp_path: Path) -> None:
    path = write(tmp_path, "logging: {level: verbose, format: json}\n")
    (line,) = load_error(path).lines
    assert line.startswith(f"{path}: logging.level: unknown log level 'verbose'")
    assert load_config(write(tmp_path, "logging: {level: DEBUG}\n"), {}).logging.level == "debug"


# --------------------------------------------------------------------------- server.api_keys


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "junction.example.com", ""])
def test_api_keys_required_off_loopback(tmp_path: Path, host: str) -> None:
    path = write(tmp_path, f"server: {{host: '{host}'}}\n")
    (line,) = load_error(path).lines
    assert line.startswith(f"{path}: server.api_keys: required when server.host is not a loopback")
    keyed = write(tmp_path, f"server: {{host: '{host}', api_keys: [k1]}}\n", "keyed.yaml")
    assert load_config(keyed, {}).server.api_keys == ["k1"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.10.0.3", "::1", "[::1]", "localhost", "LOCALHOST"]
)
def test_api_keys_optional_on_loopback(tmp_path: Path, host: str) -> None:
    assert load_config(write(tmp_path, f"server: {{host: '{host}'}}\n"), {}).server.api_keys == []


def test_empty_api_key_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {host: 0.0.0.0, api_keys: ['${JUNCTION_KEY:-}']}\n")
    (line,) = load_error(path).lines
    assert line.startswith(f"{path}: server.api_keys: an API key is empty")


def test_command_line_host_override_is_revalidated(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "server: {port: 9000}\n"), {})
    with pytest.raises(ConfigError, match=r"^command line: server\.api_keys: required"):
        config.with_server(host="0.0.0.0")
    moved = config.with_server(host="localhost", port=9100)
    assert (moved.server.host, moved.server.port) == ("localhost", 9100)
    assert config.server.port == 9000


# --------------------------------------------------------------------------- mcp_servers shape


def test_mcp_server_with_both_command_and_url(tmp_path: Path) -> None:
    path = write(tmp_path, "mcp_servers:\n  x: {command: uvx, url: 'http://h/mcp'}\n")
    assert load_error(path).lines == [
        f"{path}: mcp_servers.x: give exactly one of 'command' (stdio server) "
        "or 'url' (remote server), not both"
    ]


def test_mcp_server_with_neither_command_nor_url(tmp_path: Path) -> None:
    path = write(tmp_path, "mcp_servers:\n  x: {args: [a]}\n  y: 3\n")
    lines = load_error(path).lines
    assert lines[0].startswith(f"{path}: mcp_servers.x: give exactly one of 'command'")
    assert lines[0].endswith("neither is set")
    assert lines[1].startswith(f"{path}: mcp_servers.y: expected a mapping")


def test_mcp_server_stdio_fields_do_not_mix_with_remote(tmp_path: Path) -> None:
    path = write(tmp_path, "mcp_servers:\n  r: {url: 'http://h/mcp', args: [a], command: ''}\n")
    lines = load_error(path).lines
    # `command: ''` counts as given, so this is the "both" error rather than a silent stdio server.
    assert lines == [
        f"{path}: mcp_servers.r: give exactly one of 'command' (stdio server) "
        "or 'url' (remote server), not both"
    ]
    path = write(tmp_path, "mcp_servers:\n  r: {url: 'http://h/mcp', args: [a]}\n", "b.yaml")
    assert load_error(path).lines[0].startswith(f"{path}: mcp_servers.r.args: unknown key")


def test_mcp_remote_sse_transport(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mcp_servers:\n  old: {url: 'https://h/sse', transport: sse, headers: {X-A: b}}\n",
    )
    server = load_config(path, {}).mcp_servers["old"]
    assert isinstance(server, RemoteMcpServerConfig)
    assert (server.transport, server.headers) == ("sse", {"X-A": "b"})


# --------------------------------------------------------------------------- redaction

SECRETS_YAML = """\
server: {host: 0.0.0.0, api_keys: [server-key-1, server-key-2]}
backends:
  cloud: {type: openai, url: "https://user:hunter2@api.example.com/v1", api_key: sk-cloud}
  local: {type: ollama, url: "http://127.0.0.1:11434"}
mcp_servers:
  gh:
    command: gh-mcp
    env: {GITHUB_TOKEN: ghp-token, AWS_SECRET_ACCESS_KEY: aws, DB_PASSWORD: pw, PATH: /usr/bin}
  docs:
    url: "http://127.0.0.1:9000/mcp"
    headers: {Authorization: Bearer abc, X-Api-Token: tok, x-api-key: key1, Accept: text/plain}
"""


def test_redacted_hides_secrets_and_keeps_the_rest(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SECRETS_YAML), {})
    shown = config.redacted()
    assert shown["server"]["api_keys"] == ["***", "***"]
    assert shown["backends"]["cloud"]["api_key"] == "***"
    assert shown["backends"]["cloud"]["url"] == "https://user:***@api.example.com/v1"
    assert shown["backends"]["local"]["api_key"] == ""  # nothing to hide, and worth seeing
    assert shown["mcp_servers"]["gh"]["env"] == {
        "GITHUB_TOKEN": "***",
        "AWS_SECRET_ACCESS_KEY": "***",
        "DB_PASSWORD": "***",
        "PATH": "/usr/bin",
    }
    assert shown["mcp_servers"]["docs"]["headers"] == {
        "Authorization": "***",
        "X-Api-Token": "***",
        "x-api-key": "***",
        "Accept": "text/plain",
    }
    assert shown["server"]["host"] == "0.0.0.0"
    for secret in ("server-key-1", "sk-cloud", "hunter2", "ghp-token", "Bearer abc", "tok"):
        assert repr(secret) not in repr(shown)
    # The live config is untouched.
    assert config.backends["cloud"].api_key == "sk-cloud"


def test_secret_values_lists_what_redaction_hides(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SECRETS_YAML), {})
    assert sorted(config.secret_values()) == sorted(
        [
            "server-key-1",
            "server-key-2",
            "sk-cloud",
            "hunter2",
            "ghp-token",
            "aws",
            "pw",
            "Bearer abc",
            "tok",
            "key1",
        ]
    )


def test_models_are_strict_when_built_in_code() -> None:
    with pytest.raises(ValueError, match="extra"):
        JunctionConfig.model_validate({"server": {"typo": 1}})


# --------------------------------------------------------------------------- MCP gateway settings


def test_mcp_gateway_settings_and_server_filters(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        mcp: {prefix: on_collision, separator: "-", deny: ["*delete*"], call_timeout: 5}
        mcp_servers:
          fs:
            command: npx
            tools: {allow: ["read_*"], deny: ["read_secret"]}
            timeout: 2.5
            connect_timeout: 9
        """,
    )
    config = load_config(path, {})
    assert (config.mcp.prefix, config.mcp.separator, config.mcp.deny) == (
        "on_collision",
        "-",
        ["*delete*"],
    )
    fs = config.mcp_servers["fs"]
    assert (fs.tools.allow, fs.tools.deny, fs.timeout, fs.connect_timeout) == (
        ["read_*"],
        ["read_secret"],
        2.5,
        9,
    )
    bad = write(tmp_path, "mcp: {separator: '/', prefix: sometimes}\n", "bad.yaml")
    lines = load_error(bad).lines
    assert lines[0].startswith(f"{bad}: mcp.prefix: ")
    assert lines[1].startswith(f"{bad}: mcp.separator: ")


CLAUDE_DESKTOP = """\
{
  "mcpServers": {
    "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
    "remote": {"type": "sse", "url": "http://127.0.0.1:9000/sse", "headers": {"X-A": "b"}},
    "web": {"type": "http", "url": "http://127.0.0.1:9001/mcp"},
    "off": {"command": "nothing", "disabled": true},
    "cursorish": {"command": "node", "args": ["s.js"], "autoApprove": ["x"]}
  }
}
"""


def test_mcp_servers_file_in_the_common_format(tmp_path: Path) -> None:
    (tmp_path / "claude.json").write_text(CLAUDE_DESKTOP)
    path = write(tmp_path, "mcp_servers_file: claude.json\nmcp_servers:\n  own: {command: x}\n")
    servers = load_config(path, {}).mcp_servers
    assert set(servers) == {"own", "time", "remote", "web", "cursorish"}
    remote = servers["remote"]
    assert isinstance(remote, RemoteMcpServerConfig) and remote.transport == "sse"
    web = servers["web"]
    assert isinstance(web, RemoteMcpServerConfig) and web.transport == "streamable_http"
    time = servers["time"]
    assert isinstance(time, StdioMcpServerConfig) and time.env == {"TZ": "UTC"}


def test_mcp_servers_file_errors_name_file_and_key(tmp_path: Path) -> None:
    json_path = tmp_path / "servers.json"
    json_path.write_text(
        '{"mcpServers": {"a": {"args": []}, "b": {"url": "nope"}, "c": {"type": "ws", "url": "http://x"}}}'
    )
    path = write(tmp_path, "mcp_servers_file: servers.json\n")
    lines = load_error(path).lines
    assert lines[0].startswith(f"{json_path}: mcpServers.a: give exactly one of 'command'")
    assert lines[1].startswith(f"{json_path}: mcpServers.b.url: not a valid URL")
    assert lines[2] == f"{json_path}: mcpServers.c.type: unknown server type 'ws'"
    json_path.write_text('{"mcpServers": {"dup": {"command": "x"}}}')
    clash = write(
        tmp_path, "mcp_servers_file: servers.json\nmcp_servers: {dup: {command: y}}\n", "c.yaml"
    )
    assert load_error(clash).lines == [f"{json_path}: mcpServers.dup: also defined in mcp_servers"]
    json_path.write_text("{not json")
    assert "invalid JSON" in str(load_error(path))


def test_a2a_and_acp_sections(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            a2a: {name: Team hub, push: {allow_insecure_loopback: true}}
            a2a_agents:
              writer: {url: "http://127.0.0.1:9999", headers: {X-Api-Key: s3cret}, weight: 3}
            acp:
              default_mode: auto
              max_model_requests: 7
              permissions: {rules: [["mcp__*", allow]], kinds: {execute: deny}}
            """,
        ),
        {},
    )
    assert config.a2a.name == "Team hub" and config.a2a.push.allow_insecure_loopback
    assert config.a2a_agents["writer"].weight == 3
    assert config.redacted()["a2a_agents"]["writer"]["headers"] == {"X-Api-Key": "***"}
    assert config.acp.permissions is not None
    assert config.acp.permissions.kinds == {"execute": "deny"}
    from junction.build import agent_settings

    settings = agent_settings(config)
    assert (settings.default_mode, settings.max_model_requests) == ("auto", 7)
    assert settings.permissions.base("mcp__files", "edit") == "allow"
    assert settings.permissions.base("shell", "execute") == "deny"
    assert settings.permissions.base("reader", "read") == "allow"  # defaults kept for the rest
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, "acp: {default_mode: yolo}\na2a: {strategy: 1, nme: x}\n"), {})
    message = str(raised.value)
    assert "acp.default_mode" in message
    assert "a2a.nme: unknown key (did you mean 'name'?)" in message


# --------------------------------------------------------------------------- scoped API keys

SCOPED_KEYS_YAML = """\
server:
  host: 0.0.0.0
  api_keys:
    - plain-key
    - key: "${CI_KEY}"
      name: ci
      scopes: [openai, metrics]
      models: ["gpt-4*", local-*]
    - {key: tools-key, scopes: [mcp], mcp_tools: ["notes__*"], a2a_agents: []}
"""


def test_scoped_api_keys_load_next_to_plain_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SCOPED_KEYS_YAML), {"CI_KEY": "ci-secret"})
    plain, ci, tools = config.server.api_keys
    assert plain == "plain-key"
    assert isinstance(ci, ApiKeyConfig) and isinstance(tools, ApiKeyConfig)
    assert (ci.key, ci.name, ci.scopes, ci.models) == (
        "ci-secret",
        "ci",
        ["openai", "metrics"],
        ["gpt-4*", "local-*"],
    )
    assert ci.mcp_tools == ["*"] and ci.a2a_agents == ["*"]  # unlimited unless listed
    assert (tools.scopes, tools.mcp_tools, tools.a2a_agents) == (["mcp"], ["notes__*"], [])
    assert config.server.metrics_public is False
    grants = config.server.key_grants()
    # Unnamed keys are named from the key itself, so removing another never renames them.
    assert [g.name for g in grants] == [unnamed_key_name(grants[0].key), "ci", grants[2].name]
    assert grants[2].name == unnamed_key_name(grants[2].key) != grants[0].name
    assert grants[0].scopes == list(API_KEY_SCOPES)  # a plain string has full access
    assert "ci-secret" not in repr(config) and "tools-key" not in repr(grants)


def test_a_key_listed_twice_keeps_its_first_name(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {api_keys: [same, other, same]}\n")
    grants = load_config(path, {}).server.key_grants()
    assert [(g.key, g.name) for g in grants] == [
        ("same", unnamed_key_name("same")),
        ("other", unnamed_key_name("other")),
    ]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{key: k, scopes: [mcp, tools]}", "server.api_keys.0.scopes.1: Input should be 'mcp'"),
        ("{key: k, scope: [mcp]}", "server.api_keys.0.scope: unknown key (did you mean 'scopes'?)"),
        ("{name: ci}", "server.api_keys.0.key: required"),
        ("{key: k, scopes: []}", "server.api_keys.0.scopes: List should have at least 1 item"),
        ("{key: k, name: 'two words'}", "server.api_keys.0.name: String should match pattern"),
        ("42", "server.api_keys.0: expected a key (string) or a mapping with 'key'"),
        ("{key: '${UNSET:-}'}", "server.api_keys: an API key is empty"),
    ],
)
def test_bad_scoped_keys_name_the_key_path(tmp_path: Path, entry: str, expected: str) -> None:
    path = write(tmp_path, f"server:\n  api_keys:\n    - {entry}\n")
    error = load_error(path)
    assert_clean(error)
    (line,) = error.lines
    assert line.startswith(f"{path}: {expected}"), line


def test_key_names_and_keys_must_not_clash(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        server:
          api_keys:
            - first
            - {key: k2, name: ops}
            - {key: k3, name: ops}
            - {key: first, scopes: [mcp]}
            - {key: k5, name: FIRST_NAME}
        """.replace("FIRST_NAME", unnamed_key_name("first")),
    )
    lines = load_error(path).lines
    assert lines == [
        f"{path}: server.api_keys.2.name: name 'ops' is already used",
        f"{path}: server.api_keys.3.key: this key is listed more than once",
        f"{path}: server.api_keys.4.name: name '{unnamed_key_name('first')}' is already used",
    ]


def test_scoped_keys_are_redacted_but_their_limits_are_shown(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SCOPED_KEYS_YAML), {"CI_KEY": "ci-secret"})
    shown = config.redacted()["server"]["api_keys"]
    assert shown[0] == "***"
    assert shown[1] == {
        "key": "***",
        "name": "ci",
        "scopes": ["openai", "metrics"],
        "mcp_tools": ["*"],
        "a2a_agents": ["*"],
        "models": ["gpt-4*", "local-*"],
        "limits": None,  # rate limits and quotas (docs/limits.md): none of its own
    }
    assert shown[2]["key"] == "***" and shown[2]["mcp_tools"] == ["notes__*"]
    assert sorted(config.secret_values()) == ["ci-secret", "plain-key", "tools-key"]


def test_scoped_keys_survive_command_line_overrides(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SCOPED_KEYS_YAML), {"CI_KEY": "ci-secret"})
    moved = config.with_server(port=9100)
    assert moved.server.api_keys == config.server.api_keys
    assert moved.server.key_grants()[1].name == "ci"


def test_metrics_public_is_a_server_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {metrics_public: true}\n")
    assert load_config(path, {}).server.metrics_public is True


def test_the_self_agent_name_must_not_be_a_registered_agent() -> None:
    with pytest.raises(ValidationError, match="also an agent in a2a_agents"):
        JunctionConfig.model_validate(
            {
                "a2a": {"self_agent": {"name": "helper"}},
                "a2a_agents": {"helper": {"url": "http://127.0.0.1:9"}},
            }
        )

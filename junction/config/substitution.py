"""`${VAR}` and `${VAR:-default}` in configuration values, expanded after YAML parsing.

Hand-written rather than `os.path.expandvars` or `string.Template`: those leave an unset
variable in place silently (or raise without the key path), and neither knows `:-default`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["substitute_env"]

_SUBST = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_SUBST_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _substitute_string(
    text: str, env: Mapping[str, str], path: tuple[str | int, ...], errors: list[str]
) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        body = match.group("body")
        if body is None:
            errors.append(f"{_dotted(path)}: unterminated '${{' (write '$${{' for a literal '${{')")
            return whole
        parsed = _SUBST_BODY.fullmatch(body)
        if parsed is None:
            errors.append(
                f"{_dotted(path)}: invalid substitution {whole!r} "
                "(expected ${VAR} or ${VAR:-default}; write '$${' for a literal '${')"
            )
            return whole
        name, default = parsed.group("name"), parsed.group("default")
        value = env.get(name)
        if default is not None:
            return value if value else default  # like the shell: unset or empty takes the default
        if value is None:
            errors.append(
                f"{_dotted(path)}: environment variable {name} is not set "
                f"(use ${{{name}:-default}} to give a default)"
            )
            return whole
        return value

    return _SUBST.sub(replace, text)


def substitute_env(
    node: Any, env: Mapping[str, str], path: tuple[str | int, ...] = ()
) -> tuple[Any, list[str]]:
    """Expand `${VAR}`/`${VAR:-default}` in every string value of parsed YAML; `$${` is a `${`.

    Runs after parsing, so a substituted value can never change the YAML structure. Mapping keys
    are left alone. Returns the new tree and `<key.path>: <message>` lines for each problem.
    """
    errors: list[str] = []

    def walk(item: Any, where: tuple[str | int, ...]) -> Any:
        if isinstance(item, str):
            return _substitute_string(item, env, where, errors)
        if isinstance(item, dict):
            return {key: walk(value, (*where, key)) for key, value in item.items()}
        if isinstance(item, list):
            return [walk(value, (*where, i)) for i, value in enumerate(item)]
        return item

    return walk(node, path), errors

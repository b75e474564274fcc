"""Agent cards across versions: any card (1.0, 0.3, or the merged shape the official SDK serves)
in the 1.0 shape, and a 1.0 card with the 0.3 fields added so clients of both versions read it."""

from __future__ import annotations

from typing import Any

from a2a.versions.common import V03, Json, normalize_version

_SCHEME_TYPES = {
    "apiKey": "apiKeySecurityScheme",
    "http": "httpAuthSecurityScheme",
    "oauth2": "oauth2SecurityScheme",
    "openIdConnect": "openIdConnectSecurityScheme",
    "mutualTLS": "mtlsSecurityScheme",
}


def card_to_v10(card: Json) -> Json:
    """Any card (1.0, 0.3, or the merged shape the SDK serves) in the 1.0 shape."""
    out = dict(card)
    if "supportedInterfaces" not in out and out.get("url"):
        version = normalize_version(str(out.get("protocolVersion") or "0.3"))
        interfaces = [
            {
                "url": out["url"],
                "protocolBinding": out.get("preferredTransport") or "JSONRPC",
                "protocolVersion": version,
            }
        ]
        extras = out.get("additionalInterfaces")
        for extra in extras if isinstance(extras, list) else []:
            if isinstance(extra, dict) and extra.get("url"):
                interfaces.append(
                    {
                        "url": extra["url"],
                        "protocolBinding": extra.get("transport") or "JSONRPC",
                        "protocolVersion": version,
                    }
                )
        out["supportedInterfaces"] = interfaces
    capabilities = out.get("capabilities") or {}
    if out.get("supportsAuthenticatedExtendedCard") and isinstance(capabilities, dict):
        capabilities = dict(capabilities)
        capabilities.setdefault("extendedAgentCard", True)
        out["capabilities"] = capabilities
    for legacy in (
        "url",
        "preferredTransport",
        "protocolVersion",
        "additionalInterfaces",
        "supportsAuthenticatedExtendedCard",
    ):
        out.pop(legacy, None)
    legacy_security = out.pop("security", None)
    if legacy_security is not None and "securityRequirements" not in out:
        out["securityRequirements"] = _security_to_v10(legacy_security)
    schemes = out.get("securitySchemes")
    if isinstance(schemes, dict):
        converted: Json = {}
        for name, scheme in schemes.items():
            wrapped = isinstance(scheme, dict) and any(k in scheme for k in _V10_KEYS)
            if wrapped:  # 1.0 (the merged shape also has the 0.3 fields: the 1.0 ones win)
                converted[name] = {k: v for k, v in scheme.items() if k in _V10_KEYS}
            elif isinstance(scheme, dict) and scheme.get("type") in _SCHEME_TYPES:
                body = {k: v for k, v in scheme.items() if k != "type"}
                if "in" in body:
                    body["location"] = body.pop("in")
                converted[name] = {_SCHEME_TYPES[scheme["type"]]: body}
            else:
                converted[name] = scheme
        out["securitySchemes"] = converted
    return out


_V10_KEYS = frozenset(_SCHEME_TYPES.values())


def _security_to_v10(requirements: Any) -> list[Json]:
    if not isinstance(requirements, list):
        return []
    return [
        {"schemes": {name: {"list": scopes} for name, scopes in item.items()}}
        for item in requirements
        if isinstance(item, dict)
    ]


def with_v03_fields(card: Json) -> Json:
    """A 1.0 card plus the 0.3 fields (url, preferredTransport, ...) so both kinds of client read it.

    The 0.3 `url` is the first interface that speaks 0.3; without one the card is left 1.0-only.
    """
    interfaces = card.get("supportedInterfaces") or []
    legacy = [
        i
        for i in interfaces
        if isinstance(i, dict) and normalize_version(str(i.get("protocolVersion", ""))) == V03
    ]
    if not legacy:
        return card
    out = dict(card)
    primary = legacy[0]
    out["url"] = primary["url"]
    out["preferredTransport"] = primary.get("protocolBinding", "JSONRPC")
    out["protocolVersion"] = "0.3.0"
    if len(legacy) > 1:
        out["additionalInterfaces"] = [
            {"url": i["url"], "transport": i.get("protocolBinding", "JSONRPC")} for i in legacy[1:]
        ]
    if (card.get("capabilities") or {}).get("extendedAgentCard"):
        out["supportsAuthenticatedExtendedCard"] = True
    _add_v03_security(out)
    return out


def _add_v03_security(card: Json) -> None:
    """0.3's `security` beside 1.0's `securityRequirements`, and each scheme with its 0.3
    fields (`type`, `in`, ...) beside its 1.0 wrapper: the merged shape the official SDK
    serves, which clients of either version read."""
    requirements = card.get("securityRequirements")
    if isinstance(requirements, list):
        card["security"] = [
            {name: list((scopes or {}).get("list") or []) for name, scopes in names.items()}
            for item in requirements
            if isinstance(item, dict) and isinstance(names := item.get("schemes"), dict)
        ]
    schemes = card.get("securitySchemes")
    if not isinstance(schemes, dict):
        return
    merged: Json = {}
    for name, scheme in schemes.items():
        merged[name] = scheme
        if not isinstance(scheme, dict) or "type" in scheme:
            continue
        for legacy, key in _SCHEME_TYPES.items():
            body = scheme.get(key)
            if isinstance(body, dict):
                fields = {k: v for k, v in body.items() if k != "location"}
                if "location" in body:
                    fields["in"] = body["location"]
                merged[name] = {**scheme, "type": legacy, **fields}
                break
    card["securitySchemes"] = merged

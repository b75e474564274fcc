"""Agent card signatures (A2A 1.0 section 8.4): JWS (RFC 7515) over the card's RFC 8785
canonical JSON, `signatures` left out.

The hub checks the signatures on the cards agents serve when it registers them (and when a
refreshed card changes), by the policy `a2a.card_signatures.verify` (or an agent's own
`card_signatures`): `required` refuses an unsigned card, `optional` checks signatures when there
are some, `off` ignores them. A card is taken when one of its signatures holds.

What a signer canonicalized is not always the JSON it serves: the A2A 1.0 rules drop default
values before canonicalizing, and the official SDK signs its protobuf card with every empty
string, list and object removed. So a signature is checked against the card as served and
against that cleaned form; empties are the only difference the two allow.

The hub's own cards (its card, each proxied card) are its own statements, with its URLs in
them: they carry the hub's signature when `a2a.card_signatures.signing_key_file` is set, over
the cleaned form (which the SDK's verifier and ours both derive), and no signature otherwise,
never an agent's (which the rewritten URLs would break).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import rfc8785

from a2a.settings import CardSignatureSettings

if TYPE_CHECKING:  # PyJWT (with cryptography) is imported when a signature is made or checked
    from jwt.api_jwk import PyJWK

Json = dict[str, Any]

MAX_DEPTH = 64
"""Deeper cards are not canonicalized (extension params may nest without end)."""


class SignatureError(Exception):
    """Why a card's signatures cannot be accepted."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cleaned(value: Any, depth: int = 0) -> Any:
    """`value` with empty strings, lists and objects removed at every level (None when it is
    itself empty): what the official SDK canonicalizes."""
    if depth > MAX_DEPTH:
        raise SignatureError(f"the card nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            inner = cleaned(item, depth + 1)
            if inner is not None:
                kept[key] = inner
        return kept or None
    if isinstance(value, list):
        items = [inner for item in value if (inner := cleaned(item, depth + 1)) is not None]
        return items or None
    if isinstance(value, str) and not value:
        return None
    return value


def payloads(card: Json) -> list[bytes]:
    """The canonical payloads a signer of `card` may have signed: the card as served and its
    cleaned form, both without `signatures`."""
    body = {key: value for key, value in card.items() if key != "signatures"}
    try:
        forms = [rfc8785.dumps(body), rfc8785.dumps(cleaned(body) or {})]
    except rfc8785.CanonicalizationError as exc:
        raise SignatureError(f"the card has no canonical form: {exc}") from None
    return forms if forms[0] != forms[1] else forms[:1]


def _header(signature: Json) -> tuple[Json, Json]:
    """The protected header (decoded) and the unprotected one of one AgentCardSignature."""
    protected = signature.get("protected")
    if not isinstance(protected, str) or not isinstance(signature.get("signature"), str):
        raise SignatureError("a signature needs string `protected` and `signature` fields")
    try:
        header = orjson.loads(_b64url_decode(protected))
    except (binascii.Error, ValueError):
        raise SignatureError("its protected header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise SignatureError("its protected header is not a JSON object")
    unprotected = signature.get("header")
    return header, unprotected if isinstance(unprotected, dict) else {}


KeyFetch = Callable[[str], Awaitable[Json]]
"""Fetches a JWKS document from a URL (the registry's guarded fetch)."""


@dataclass(frozen=True)
class KeySource:
    """Where one agent's signing keys may come from, beside the hub's trusted ones."""

    fetch: KeyFetch
    jku_allowed: Callable[[str], bool]
    """Whether a signature's own `jku` may be fetched (the `jku` policy, for this agent)."""
    jwks: tuple[str, ...] = ()
    """Key sets trusted for this agent only (its `jwks_url`)."""


class CardVerifier:
    """Checks card signatures with the configured keys and (by the `jku` policy) the keys a
    signature's `jku` names; JWKS documents are kept for `ttl` seconds."""

    def __init__(self, settings: CardSignatureSettings, ttl: float) -> None:
        self.settings = settings
        self._ttl = ttl
        self._jwks: dict[str, tuple[float, list[PyJWK]]] = {}
        self._trusted: list[PyJWK] | None = None

    async def verify(self, card: Json, policy: str, keys: KeySource) -> str | None:
        """The `kid` of the signature that holds, None when `policy` lets the card in without
        one; SignatureError (with every signature's reason) when it may not be taken."""
        if policy == "off":
            return None
        signatures = card.get("signatures")
        if not signatures:
            if policy == "required":
                raise SignatureError("the card is not signed (card signatures are required)")
            return None
        if not isinstance(signatures, list):
            raise SignatureError("`signatures` is not a list")
        forms = payloads(card)
        reasons: list[str] = []
        for index, signature in enumerate(signatures):
            try:
                if not isinstance(signature, dict):
                    raise SignatureError("it is not an object")
                return await self._check(signature, forms, keys)
            except SignatureError as exc:
                reasons.append(f"signature {index}: {exc}")
        raise SignatureError("no signature holds (" + "; ".join(reasons) + ")")

    async def _check(self, signature: Json, forms: list[bytes], source: KeySource) -> str:
        import jwt

        header, unprotected = _header(signature)
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise SignatureError(f"algorithm {alg!r} is not accepted")
        kid = header.get("kid", unprotected.get("kid"))
        jku = header.get("jku", unprotected.get("jku"))
        keys = await self._keys(kid, jku, source)
        for key in keys:
            for payload in forms:
                token = f"{signature['protected']}.{_b64url(payload)}.{signature['signature']}"
                try:
                    jwt.api_jws.decode_complete(token, key.key, algorithms=[alg])
                except jwt.PyJWTError:
                    continue
                return str(kid)
        raise SignatureError(f"it does not verify with key {kid!r}")

    async def _keys(self, kid: Any, jku: Any, source: KeySource) -> list[PyJWK]:
        """The trusted keys that may have made a signature naming `kid` (and `jku`)."""

        def matching(keys: list[PyJWK]) -> list[PyJWK]:
            return [key for key in keys if kid is None or key.key_id == kid]

        if self._trusted is None:
            self._trusted = [_jwk(key) for key in self.settings.trusted_keys]
        found = matching(self._trusted)
        for url in [*self.settings.trusted_jwks, *source.jwks]:
            found += matching(await self._jwks_at(url, source.fetch))
        configured = jku in self.settings.trusted_jwks or jku in source.jwks
        if isinstance(jku, str) and not configured:
            if source.jku_allowed(jku):
                found += matching(await self._jwks_at(jku, source.fetch))
            elif not found:
                raise SignatureError(
                    f"its key set {jku} is not trusted (a2a.card_signatures: jku, trusted_jwks)"
                )
        if not found:
            raise SignatureError(f"no trusted key has kid {kid!r}")
        return found

    async def _jwks_at(self, url: str, fetch: KeyFetch) -> list[PyJWK]:
        cached = self._jwks.get(url)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        from jwt.api_jwk import PyJWKSet

        try:
            document = await fetch(url)
            keys = list(PyJWKSet.from_dict(document).keys)
        except SignatureError:
            raise
        except Exception as exc:  # a fetch error or a malformed key set
            raise SignatureError(f"key set {url}: {exc}") from None
        self._jwks[url] = (time.monotonic(), keys)
        return keys


def _jwk(key: Json) -> PyJWK:
    import jwt
    from jwt.api_jwk import PyJWK

    try:
        return PyJWK.from_dict(key)
    except jwt.PyJWTError as exc:
        raise ValueError(f"not a usable public JWK: {exc}") from None


class CardSigner:
    """Signs the hub's cards with the configured private key (PEM)."""

    def __init__(self, pem: bytes, kid: str | None, jku: str | None) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from jwt.algorithms import get_default_algorithms

        private = load_pem_private_key(pem, password=None)
        self._key = private
        self.alg = _alg_for(private)
        public = get_default_algorithms()[self.alg].to_jwk(private.public_key(), as_dict=True)
        self.kid = kid or _thumbprint(public)
        self.public_jwk: Json = {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}
        self.jku = jku
        self._cache: dict[bytes, Json] = {}

    def jwks(self) -> Json:
        """The hub's public key set, served for `jku`."""
        return {"keys": [self.public_jwk]}

    def sign(self, card: Json, jku: str | None = None) -> Json:
        """`card` with the hub's signature as its only one."""
        body = {key: value for key, value in card.items() if key != "signatures"}
        payload = rfc8785.dumps(cleaned(body) or {})
        signature = self._cache.get(payload)
        if signature is None:
            header: Json = {"alg": self.alg, "typ": "JOSE", "kid": self.kid}
            if self.jku or jku:
                header["jku"] = self.jku or jku
            import jwt

            token = jwt.api_jws.encode(payload, self._key, algorithm=self.alg, headers=header)  # type: ignore[arg-type]
            protected, _, value = token.split(".")
            signature = {"protected": protected, "signature": value}
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[payload] = signature
        return {**body, "signatures": [signature]}


def _alg_for(private: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(private, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(
            private.curve.name
        )
        if alg is None:
            raise ValueError(f"curve {private.curve.name} is not usable for JWS")
        return alg
    if isinstance(private, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError("the signing key must be an EC (P-256/384/521), RSA or Ed25519 key")


def _thumbprint(jwk: Json) -> str:
    """The key's RFC 7638 thumbprint (its required members, canonical, SHA-256)."""
    import hashlib

    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    required = {name: jwk[name] for name in members[jwk["kty"]]}
    return _b64url(hashlib.sha256(rfc8785.dumps(required)).digest())


def load_signer(settings: CardSignatureSettings) -> CardSigner | None:
    """The hub's signer from its settings, or None when it signs nothing."""
    if settings.signing_key_file is None:
        return None
    with open(settings.signing_key_file, "rb") as file:
        pem = file.read()
    return CardSigner(pem, settings.signing_kid, settings.signing_jku)


__all__ = ["CardSigner", "CardVerifier", "KeySource", "SignatureError", "load_signer", "payloads"]

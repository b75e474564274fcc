"""Signed agent cards (A2A 1.0 section 8.4) over real HTTP: agents whose cards the official
a2a-sdk signed (its own signer, ES256, JWS over RFC 8785 JSON) are registered by the policy
(required, optional, off) with the reason when refused; the hub's cards carry its own signature,
which the SDK's verifier accepts, or none, never the agent's."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from a2a.registry import CardError
from a2a.settings import AgentSpec, CardSignatureSettings
from a2a.signing import payloads
from router_core.http import close_session
from tests.a2a.harness import PEERS, running_hub, sdk_agent
from tests.peers import python_peer

KID = "agent-key-1"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An agent's signing key (PEM) and its JWKS, and the hub's own key (PEM)."""
    folder = tmp_path_factory.mktemp("keys")
    paths = {}
    for name in ("agent", "hub", "stranger"):
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (folder / f"{name}.pem").write_bytes(pem)
        jwk = {**ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": KID}
        (folder / f"{name}.jwks").write_bytes(orjson.dumps({"keys": [jwk]}))
        paths[name], paths[f"{name}.jwks"] = folder / f"{name}.pem", folder / f"{name}.jwks"
    return paths


@pytest.fixture(scope="module")
def agents(keys: dict[str, Path]) -> Iterator[dict[str, str]]:
    """Agents: signed with a key set on their own origin, the same but tampered with after
    signing, unsigned, and signed with a key set on another origin (the `stranger`'s)."""
    sign = f"{keys['agent']}:{KID}:self"
    with (
        sdk_agent("signed", "1.0", (), "--sign", sign, "--jwks", str(keys["agent.jwks"])) as good,
        sdk_agent(
            "tampered", "1.0", (), "--sign", sign, "--jwks", str(keys["agent.jwks"]), "--tamper"
        ) as bad,
        sdk_agent("plain", "1.0", ()) as plain,
        sdk_agent("keyhost", "1.0", (), "--jwks", str(keys["agent.jwks"])) as keyhost,
        sdk_agent(
            "foreign", "1.0", (), "--sign", f"{keys['agent']}:{KID}:{keyhost}/jwks.json"
        ) as foreign,
    ):
        yield {"signed": good, "tampered": bad, "plain": plain, "foreign": foreign, "keys": keyhost}


async def register(hub: Any, name: str, url: str, **spec: Any) -> str | None:
    """Register `name` strictly: None when taken, else the reason it was refused."""
    try:
        await hub.registry.add(name, AgentSpec(url=url, **spec), source="admin", strict=True)
    except CardError as exc:
        return str(exc)
    return None


def sdk_verifies(card_url: str, key: str = "") -> str:
    """What the official SDK's verifier says of the card at `card_url` (fetched with `key`)."""
    done = subprocess.run(
        [str(python_peer("a2a-sdk")), str(PEERS / "sdk_verify_card.py"), card_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "CARD_KEY": key},
    )
    return done.stdout.strip() or done.stderr.strip()[-500:]


@pytest.mark.asyncio
async def test_each_policy_takes_and_refuses_what_it_should(
    agents: dict[str, str], tmp_path: Path
) -> None:
    for policy in ("required", "optional", "off"):
        settings = CardSignatureSettings(verify=policy)  # type: ignore[arg-type]
        async with running_hub({}, tmp_path / f"{policy}.db", card_signatures=settings) as (
            hub,
            _,
        ):
            signed = await register(hub, "signed", agents["signed"])
            assert signed is None, signed
            agent = hub.registry.get("signed")
            assert agent is not None
            assert agent.signed_by == (None if policy == "off" else KID)
            tampered = await register(hub, "tampered", agents["tampered"])
            unsigned = await register(hub, "plain", agents["plain"])
            if policy == "off":
                assert tampered is None and unsigned is None
                continue
            assert tampered is not None and "card signature refused" in tampered, tampered
            assert "does not verify with key 'agent-key-1'" in tampered
            if policy == "required":
                assert unsigned is not None and "not signed" in unsigned, unsigned
            else:
                assert unsigned is None, unsigned
            # the hub is still up and the good agent still serves its card
            assert hub.registry.get("signed") is not None
    await close_session()


@pytest.mark.asyncio
async def test_a_key_set_on_another_origin_needs_trust(
    agents: dict[str, str], tmp_path: Path
) -> None:
    jwks = f"{agents['keys']}/jwks.json"
    async with running_hub({}, tmp_path / "a.db") as (hub, _):
        refused = await register(hub, "foreign", agents["foreign"])
        assert refused is not None and "is not trusted" in refused, refused
        # named for this agent, the key set is trusted
        assert await register(hub, "foreign", agents["foreign"], jwks_url=jwks) is None
    # `jku: any` fetches it, but through the SSRF guard: HTTPS to a public address only
    settings = CardSignatureSettings(jku="any")
    async with running_hub({}, tmp_path / "b.db", card_signatures=settings) as (hub, _):
        refused = await register(hub, "foreign", agents["foreign"])
        assert refused is not None and "HTTPS is required" in refused, refused
    settings = CardSignatureSettings(trusted_jwks=[jwks])
    async with running_hub({}, tmp_path / "c.db", card_signatures=settings) as (hub, _):
        assert await register(hub, "foreign", agents["foreign"]) is None
    await close_session()


@pytest.mark.asyncio
async def test_the_hubs_cards_carry_its_signature_or_none(
    agents: dict[str, str], keys: dict[str, Path], tmp_path: Path
) -> None:
    unsigned_hub = running_hub({"signed": agents["signed"]}, tmp_path / "plain.db")
    async with unsigned_hub as (_, base), httpx.AsyncClient() as http:
        for path in (
            "/a2a/agents/signed/.well-known/agent-card.json",
            "/.well-known/agent-card.json",
        ):
            card = (await http.get(base + path, headers={"A2A-Version": "1.0"})).json()
            assert "signatures" not in card, card
            assert "signatures" not in orjson.dumps(card).decode()  # not moved elsewhere either
        assert (await http.get(base + "/a2a/jwks.json")).status_code == 404
    settings = CardSignatureSettings(signing_key_file=str(keys["hub"]), signing_kid="hub-1")
    signing_hub = running_hub(
        {"signed": agents["signed"]}, tmp_path / "signed.db", card_signatures=settings
    )
    async with signing_hub as (hub, base), httpx.AsyncClient() as http:
        proxied = f"{base}/a2a/agents/signed/.well-known/agent-card.json"
        card = (await http.get(proxied, headers={"A2A-Version": "1.0"})).json()
        assert len(card["signatures"]) == 1, card
        upstream = (await http.get(agents["signed"] + "/.well-known/agent-card.json")).json()
        assert card["signatures"][0] != upstream["signatures"][0]
        mark = card["capabilities"]["extensions"][-1]
        assert mark["params"]["upstreamSignatureKid"] == KID
        jwks = (await http.get(base + "/a2a/jwks.json")).json()
        assert jwks["keys"][0]["kid"] == "hub-1"
        # the official SDK's verifier accepts the hub's cards, with the key from their jku
        for url in (proxied, f"{base}/.well-known/agent-card.json"):
            assert await asyncio.to_thread(sdk_verifies, url) == "VERIFIED", url
        # (the same verifier refuses the agent's card that was changed after signing)
        changed = agents["tampered"] + "/.well-known/agent-card.json"
        assert (await asyncio.to_thread(sdk_verifies, changed)).startswith("INVALID")
        # and a card changed after the hub signed it no longer verifies (with our verifier)
        forged = {**card, "description": "forged"}
        assert payloads(forged) != payloads(card)
        verifier = hub.registry._verifier
        from a2a.signing import KeySource, SignatureError

        async def fetch(url: str) -> dict[str, Any]:
            return dict((await http.get(url)).json())

        source = KeySource(fetch, lambda url: url.startswith(base))
        assert await verifier.verify(card, "required", source) == "hub-1"
        with pytest.raises(SignatureError, match="does not verify"):
            await verifier.verify(forged, "required", source)
    await close_session()


def test_a_bad_signing_key_is_a_clear_error(tmp_path: Path) -> None:
    from a2a.registry import Registry
    from a2a.settings import HubSettings

    (tmp_path / "key.pem").write_text("not a key")
    settings = HubSettings(
        card_signatures=CardSignatureSettings(signing_key_file=str(tmp_path / "key.pem"))
    )
    with pytest.raises(ValueError, match=r"a2a\.card_signatures\.signing_key_file"):
        Registry(settings)

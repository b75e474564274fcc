"""The A2A hub: wire types, endpoint, client, registry, task store (built by the a2a issue; empty until then)."""

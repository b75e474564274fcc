"""LLM backends and the backend-selection core (built by the router_core issue; empty until then)."""

"""Aggregation of many MCP servers into one (built by the mcp_gateway issue; empty until then)."""

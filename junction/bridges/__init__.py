"""The adapters between protocols: the ACP agent over the router, the MCP gateway and the A2A
agents (`acp_services`); A2A agents as MCP tools (`a2a_tools`); Junction's own A2A agent, an ACP
turn loop behind the hub (`self_agent`)."""

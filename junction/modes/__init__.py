"""How each `--mode` runs Junction: the ACP agent on stdio, the MCP aggregate on stdio, every HTTP
surface under uvicorn, and the bridge from an editor's stdio to a remote Junction."""

"""Junction's HTTP side: the Starlette application that mounts every surface, the access guard in
front of it (API keys, browser origins), request metrics and access records, and the uvicorn
server that serves it with a graceful drain."""

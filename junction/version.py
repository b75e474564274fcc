"""Junction's version, the one copy. The distribution's metadata is built from it (pyproject's
`version` is dynamic, read from here), so cards, `serverInfo` and `agentInfo` say what is
installed. Kept as a literal rather than read back from `importlib.metadata` at run time: that
read costs ~21 ms, a tenth of the ACP agent's cold start (docs/performance.md)."""

__version__ = "0.1.0"

__all__ = ["__version__"]

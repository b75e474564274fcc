"""Composition root: configuration, CLI, the HTTP application, observability."""

"""The ACP agent an IDE launches (built by the acp issue; empty until then)."""

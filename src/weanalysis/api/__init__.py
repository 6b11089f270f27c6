"""The HTTP layer: parse, call the core, serialise. No portrait logic lives here."""

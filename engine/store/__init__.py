"""Infrastructure: where events live (URLs, recorders, mapper, the event log), the aggregate store, and network files."""

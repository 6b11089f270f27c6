"""Live collection: records from HTTP requests, committed in groups, answered once durable."""

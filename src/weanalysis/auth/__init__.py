"""Access tokens for the WeChat-compatible API."""

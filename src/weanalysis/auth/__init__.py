"""Access tokens (WeChat API), signed dashboard sessions, and sign-in throttling."""

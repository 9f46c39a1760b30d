"""Sign-in: the Cognito user pool, its triggers, and the WAF rate limit on it."""

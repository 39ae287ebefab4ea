"""Copy to instance/config.py to override settings on this machine (never commit secrets)."""

# DATABASE_URL = "postgresql+psycopg://civicpay@127.0.0.1:5432/civicpay"
# SECRET_KEY = "a long random string: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
# BABEL_DEFAULT_LOCALE = "en"
# LOGIN_RATE_LIMIT = "10 per minute"
# RATELIMIT_STORAGE_URI = "redis://127.0.0.1:6379/0"

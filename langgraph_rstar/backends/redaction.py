"""Keeping secrets out of text: API keys and URL credentials never reach messages, logs or files.

A server may echo the key it was sent in its error body, and a base URL may carry
``user:password@`` or ``?api_key=`` credentials. Everything the package prints, logs or stores
about an endpoint goes through :func:`redact_url` (for URLs) or :func:`redact` (for free text).

Example:
    >>> redact_url("https://bob:s3cret@api.example.com/v1?api_key=abc123")
    'https://***@api.example.com/v1?api_key=***'
    >>> redact("invalid key sk-live-0123456789abcdef", ["sk-live-0123456789abcdef"])
    'invalid key ***'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "is_secret", "redact", "redact_url", "url_secrets"]

MASK = "***"
# Values that are placeholders, not secrets ("EMPTY" is what vLLM and llama.cpp accept).
_PLACEHOLDERS = {"", "empty", "none", "null", "no-key", "sk-no-key-required", "dummy", "test"}
_MIN_SECRET_LEN = 6  # shorter strings would mask ordinary words in messages
_SECRET_PARAMS = re.compile(r"(?i)key|token|secret|password|passwd|auth|signature|sig")
# Shapes of credentials worth masking even when we were not told the value.
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\g<1>" + MASK),
    (re.compile(r"\b(?:sk|rk|pk|hf|gsk|xai)[-_][A-Za-z0-9_-]{12,}"), MASK),
)


def is_secret(value: str | None) -> bool:
    """Whether ``value`` is worth masking (not a placeholder such as ``"EMPTY"``)."""
    return (
        value is not None
        and len(value) >= _MIN_SECRET_LEN
        and value.strip().lower() not in _PLACEHOLDERS
    )


def url_secrets(url: str | None) -> list[str]:
    """The credentials a URL carries: its password and user, and secret-looking query values."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        found = [v for v in (parts.password, parts.username) if v]
        found += [v for k, v in parse_qsl(parts.query) if _SECRET_PARAMS.search(k) and v]
    except ValueError:
        return []
    return [v for v in found if is_secret(v)]


def redact_url(url: str | None) -> str:
    """``url`` without credentials: ``user:pass@`` becomes ``***@``, secret query values ``***``."""
    if not url:
        return url or ""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, MASK if _SECRET_PARAMS.search(k) and v else v) for k, v in pairs], safe="*"
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return redact(url)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret and every credential-shaped token replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and is_secret(s)}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text

"""Service URLs made safe to show: in errors, logs and reprs, a URL never carries its password."""

from __future__ import annotations

import re
from typing import Final

_USERINFO_PASSWORD: Final = re.compile(r"(://[^/?#:@]*):[^/?#]+@")
# Any query value but the db may be a secret: a password, a key file's password, a misspelt option's value.
_QUERY_VALUE: Final = re.compile(r"([?&](?!db=)[^=&#]*=)[^&#]*")


def redact(url: str) -> str:
    """Return ``url`` with its password and the values of its query parameters (but ``db``) replaced by ``***``.

    Args:
        url: A URL (Redis, AMQP, ...), well-formed or not.

    Returns:
        The URL, safe to show in logs and error messages.
    """
    return _QUERY_VALUE.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1:***@", url))

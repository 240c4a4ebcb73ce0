"""`StorageError`, and how a failure of fsspec, s3fs or botocore becomes one that says what to fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from flyte_celery._urls import redact
from flyte_celery.errors import StorageError, StorageErrorReason

Reason = StorageErrorReason
__all__ = ["Reason", "StorageError", "classify", "names_missing_bucket", "storage_error"]

# botocore error codes that mean "these credentials are wrong", as opposed to "not allowed".
_BAD_CREDENTIAL_CODES: Final = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AuthFailure",
        "InvalidClientTokenId",
    }
)
_DENIED_CODES: Final = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled"})
_NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
# Matched by class name so that the core never imports botocore or aiohttp for a local path.
_NO_CREDENTIALS: Final = frozenset({"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"})
_UNREACHABLE: Final = frozenset(
    {"EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError", "ClientConnectorError"}
)
_TIMEOUTS: Final = frozenset({"ReadTimeoutError", "FSTimeoutError", "ServerTimeoutError"})
_CHAIN_DEPTH: Final = 8

NO_CREDENTIALS_HINT: Final = (
    "no credentials found: set storage.access_key_id and storage.secret_access_key "
    "(FLYTE_CELERY_STORAGE_ACCESS_KEY_ID / FLYTE_CELERY_STORAGE_SECRET_ACCESS_KEY), or AWS_ACCESS_KEY_ID / "
    "AWS_SECRET_ACCESS_KEY, or an AWS profile; storage.anonymous: true reads public buckets"
)


def storage_error(exc: BaseException, url: str, action: str) -> StorageError:
    """The `StorageError` for `exc`, raised while doing `action` on `url` (a `StorageError` is returned as is)."""
    if isinstance(exc, StorageError):
        return exc
    reason, detail = classify(exc)
    return StorageError(url, reason, redact(detail), action)


def classify(exc: BaseException) -> tuple[Reason, str]:
    """Why `exc` happened, looking through its causes: the most specific finding wins."""
    chain = list(_chain(exc))
    for err in chain:
        found = _specific(err)
        if found is not None:
            return found
    if isinstance(exc, PermissionError):
        return "permission", f"permission denied ({exc})"
    if isinstance(exc, FileNotFoundError):
        return "not_found", f"not found ({exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable", f"connection refused ({exc})"
    if isinstance(exc, TimeoutError):
        return "timeout", f"timed out ({exc})"
    return "other", f"{type(exc).__name__}: {exc}"


def names_missing_bucket(exc: BaseException) -> bool:
    """True when `exc` (or a cause) says the bucket itself does not exist."""
    return any(_error_code(err) == "NoSuchBucket" for err in _chain(exc))


def _specific(err: BaseException) -> tuple[Reason, str] | None:
    code = _error_code(err)
    if code is not None:
        found = _by_code(code, _client_error_text(err, code))
        if found is not None:
            return found
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & _NO_CREDENTIALS:
        return "credentials", NO_CREDENTIALS_HINT
    if names & _UNREACHABLE:
        return "unreachable", f"the endpoint is unreachable ({err}); check storage.endpoint_url / AWS_ENDPOINT_URL"
    if names & _TIMEOUTS:
        return "timeout", f"the endpoint did not answer in time ({err})"
    return None


def _by_code(code: str, text: str) -> tuple[Reason, str] | None:
    if code == "NoSuchBucket":
        return "no_bucket", f"the bucket does not exist ({text})"
    if code in _BAD_CREDENTIAL_CODES:
        return "credentials", f"the credentials were refused ({text}); check the access key and secret"
    if code in _DENIED_CODES:
        return "permission", f"access denied ({text}): the credentials lack permission, or are not valid here"
    if code in _NOT_FOUND_CODES:
        return "not_found", f"not found ({text})"
    return None


def _client_error_text(err: BaseException, code: str) -> str:
    response = getattr(err, "response", {})
    message = response.get("Error", {}).get("Message") or str(err)
    operation = getattr(err, "operation_name", None)
    return f"{code} on {operation}: {message}" if operation else f"{code}: {message}"


def _error_code(err: BaseException) -> str | None:
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None
    error = response.get("Error")
    code = error.get("Code") if isinstance(error, dict) else None
    return str(code) if code is not None else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_DEPTH:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__

"""Data-centre URIs: the filesystem one names, its identity, and redaction of credentials.

A data centre is named by a local path or a ``pyarrow.fs`` URI. An S3 URI may carry its
credentials and endpoint, so that every process that gets the URI (the ControlServer, the
billing tasks on other nodes) reaches the same bucket the same way::

    s3://KEY:SECRET@bucket/city?endpoint_override=127.0.0.1:9000&scheme=http
    s3://bucket/city?access_key=KEY&secret_key=SECRET&session_token=TOKEN&region=eu-west-1

Credentials are never shown: every message and repr that names a data centre goes through
:func:`redact`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

from gridfare.errors import DataCentreError

__all__ = ["identity", "open_filesystem", "redact"]

SHOWN = "***"
# Query keys whose values are secrets (any scheme): credentials, tokens, signatures.
_SECRET_KEY = re.compile(r"(?i)(secret|token|password|passwd|credential|signature|"
                         r"access_key|sig$|^key$)")
# scheme://userinfo@ : userinfo is a user name, a key id or a key id and secret.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s?#]+)@")
# A value ends at the next pair, a space or quote, or a colon that ends a message's part.
_QUERY_PAIR = re.compile(r"(?P<sep>[?&;])(?P<key>[A-Za-z0-9_.-]+)="
                         r"(?P<value>[^&#\s'\"]*?)(?=[&#\s'\"]|:\s|:$|$)")

# S3 URI query keys, as pyarrow's S3FileSystem takes them (credentials taken out of the
# query here: pyarrow's own URI parser only takes them as userinfo, and no session token).
_S3_CREDENTIALS = ("access_key", "secret_key", "session_token")
_S3_TEXT = ("region", "scheme", "endpoint_override", "tls_ca_file_path", "role_arn",
            "session_name", "external_id")
_S3_FLAGS = ("allow_bucket_creation", "allow_bucket_deletion", "anonymous",
             "force_virtual_addressing")
_S3_SECONDS = ("connect_timeout", "request_timeout")


def redact(text: str) -> str:
    """``text`` with every URI credential replaced by ``***``: the userinfo of
    ``scheme://user:secret@host`` and the values of query keys that hold secrets
    (``secret_key``, ``access_key``, ``session_token``, ``password``, ``signature``, ...).
    Works on a URI or on any message that contains one."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{SHOWN}@", text)
    return _QUERY_PAIR.sub(
        lambda m: (f"{m['sep']}{m['key']}={SHOWN}" if _SECRET_KEY.search(m["key"])
                   else m[0]), text)


def identity(uri: str) -> str:
    """The data centre ``uri`` names, without its credentials: the same bucket and root
    reached with other keys is the same data centre (one ControlServer, one catalog)."""
    parts = urlsplit(uri)
    if not parts.scheme or "://" not in uri:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _SECRET_KEY.search(k)]
    return urlunsplit((parts.scheme, host, parts.path, urlencode(sorted(query)), ""))


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the root path inside it that ``uri`` names."""
    try:
        if uri.startswith("s3://"):
            return _s3(uri)
        return pafs.FileSystem.from_uri(uri)
    except DataCentreError:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise DataCentreError(redact(f"data centre {uri}: cannot open: {exc}")) from exc


def _s3(uri: str) -> tuple[pafs.S3FileSystem, str]:
    parts = urlsplit(uri)
    options: dict[str, object] = {}
    if parts.username is not None:
        options["access_key"] = unquote(parts.username)
        options["secret_key"] = unquote(parts.password or "")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _S3_CREDENTIALS or key in _S3_TEXT:
            options[key] = value
        elif key in _S3_FLAGS:
            if value.lower() not in ("true", "false", "1", "0"):
                raise DataCentreError(redact(f"data centre {uri}: query key {key!r} must be "
                                             "true or false"))
            options[key] = value.lower() in ("true", "1")
        elif key in _S3_SECONDS:
            try:
                options[key] = float(value)
            except ValueError:
                raise DataCentreError(redact(f"data centre {uri}: query key {key!r} must be "
                                             "a number of seconds")) from None
        else:
            known = sorted((*_S3_CREDENTIALS, *_S3_TEXT, *_S3_FLAGS, *_S3_SECONDS))
            raise DataCentreError(redact(f"data centre {uri}: unknown query key {key!r} "
                                         f"(known: {', '.join(known)})"))
    if "secret_key" in options and "access_key" not in options:
        raise DataCentreError(redact(f"data centre {uri}: secret_key without access_key"))
    bucket = parts.hostname or ""
    if not bucket:
        raise DataCentreError(redact(f"data centre {uri}: no bucket"))
    return pafs.S3FileSystem(**options), f"{bucket}{parts.path}".rstrip("/")


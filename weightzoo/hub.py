"""Is the Hugging Face Hub reachable? Decided quickly, once per process, so that offline work fails in one clear
line instead of after tens of seconds of retries.

Offline when ``HF_HUB_OFFLINE`` is set (``1``, ``true``, ``yes``, ``on``), or when one connection to the Hub's
endpoint (``HF_ENDPOINT``, default ``https://huggingface.co``) does not open within ``PROBE_SECONDS``: the TCP
connection and, for ``https``, its TLS handshake (a proxy or firewall that accepts the connection and then breaks
it would otherwise cost every later request its retries).

Example:
    >>> import os
    >>> saved = os.environ.get("HF_HUB_OFFLINE")
    >>> os.environ["HF_HUB_OFFLINE"] = "1"; offline_reason.cache_clear()
    >>> offline_reason()
    'HF_HUB_OFFLINE is set'
    >>> _ = os.environ.pop("HF_HUB_OFFLINE") if saved is None else os.environ.update(HF_HUB_OFFLINE=saved)
    >>> offline_reason.cache_clear()
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlsplit

__all__ = ["PROBE_SECONDS", "offline_reason", "require_reachable", "uses_real_hub"]

#: How long the one probe connection may take before the Hub counts as unreachable.
PROBE_SECONDS = 3.0
_TRUE = ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def offline_reason() -> str | None:
    """Why the Hub cannot be used (one short phrase), or None when it is reachable."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urlsplit(endpoint)
    host = parts.hostname or "huggingface.co"
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        sock = socket.create_connection((host, port), timeout=PROBE_SECONDS)
    except OSError as e:
        return f"cannot reach {host}:{port} ({e.strerror or type(e).__name__})"
    with sock:
        if parts.scheme != "http":
            import ssl

            try:
                ssl.create_default_context().wrap_socket(sock, server_hostname=host).close()
            except (OSError, ssl.SSLError) as e:  # ssl.SSLError is an OSError; a timeout too
                return f"no TLS connection to {host}:{port} ({getattr(e, 'reason', None) or type(e).__name__})"
    return None


def uses_real_hub(url: str) -> bool:
    """Whether ``url`` is an ``hf://`` URL served by huggingface_hub (not a local stand-in registered for tests)."""
    if not url.startswith("hf://"):
        return False
    import fsspec

    try:
        cls = fsspec.get_filesystem_class("hf")
    except (ImportError, ValueError):
        return False
    return cls.__module__.startswith("huggingface_hub")


def require_reachable(url: str) -> None:
    """Raise :class:`~weightzoo.errors.ZooNotFoundError` in one line when ``url`` is a zoo on the real Hub and the
    Hub is not reachable; anything else (local paths, other URLs, a stand-in ``hf://``) passes untouched."""
    if uses_real_hub(url) and (reason := offline_reason()):
        from weightzoo.errors import ZooNotFoundError

        raise ZooNotFoundError(
            f"{url!r}: the Hugging Face Hub is not reachable ({reason}); copy the zoo to a local folder"
        )

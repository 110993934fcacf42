"""Deterministic event ids and pseudonymous author keys. Raw e-mail addresses stop here: only
HMAC-SHA256 keys leave schemas/."""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from pathlib import Path

SECRET_ENV = "BLOGPULSE_AUTHOR_SECRET"


def event_id(
    site: str, post_id: int, comment_id: int, type_: str, status: str, event_time: str
) -> str:
    """First 32 hex chars of sha256("<site>/<post_id>/<comment_id>/<type>/<status>/<event_time>")."""
    text = f"{site}/{post_id}/{comment_id}/{type_}/{status}/{event_time}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def load_secret(value: str | None, path: Path) -> bytes:
    """The author-key secret: `value` (BLOGPULSE_AUTHOR_SECRET) when set, else the secret in the
    per-user file `path`, created once (mode 0600) so keys stay stable across runs on this
    machine (streams/settings.py says where). Never printed."""
    if value:
        return value.encode("utf-8")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex())
        print(
            f"blogpulse: {SECRET_ENV} is not set; created a per-user author-key secret in {path}",
            file=sys.stderr,
        )
    return path.read_text().strip().encode("utf-8")


def normalise_email(email: str | None) -> str:
    return (email or "").strip().lower()


def normalise_url(url: str | None) -> str:
    url = (url or "").strip().lower()
    for prefix in ("https://", "http://"):
        if url.startswith(prefix):
            url = url[len(prefix) :]
            break
    return url.rstrip("/")


class AuthorKeyer:
    """author key = HMAC-SHA256(secret, "e:" + normalised e-mail), falling back to
    "n:" + name + "\\n" + normalised URL when there is no e-mail (pingbacks, anonymous comments).
    An entry with no e-mail, name or URL gets the key of "n:\\n": all such entries count as one
    anonymous participant, which undercounts rather than inventing people."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def key(self, email: str | None = None, name: str | None = None, url: str | None = None) -> str:
        mail = normalise_email(email)
        material = f"e:{mail}" if mail else f"n:{(name or '').strip()}\n{normalise_url(url)}"
        return hmac.new(self._secret, material.encode("utf-8"), hashlib.sha256).hexdigest()

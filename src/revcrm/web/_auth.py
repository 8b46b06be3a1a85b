"""Staff, roles, the signed session cookie, CSRF tokens and sealed URL values.

revcrm keeps no users: the host's ``authenticate(request)`` says who is asking. What this
module adds is what a browser needs to be safe: a session cookie signed with the app's
secret, a CSRF token derived from it (so a forged form from another site has no valid
token), and sealed values for URLs (a search term or a cursor that names a customer is
encrypted, so no personal data shows in the address bar, logs or Referer headers).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import secrets
from typing import Final

import attrs

from revcrm.errors import ValidationError

__all__ = ["Role", "Sealer", "SessionKeys", "Staff"]

SESSION_COOKIE: Final = "revcrm_session"


class Role(enum.StrEnum):
    """ChartMogul's roles: read-only users see; staff edit notes, tags, leads and
    credits; admins also merge and erase customers."""

    READ_ONLY = "read-only"
    STAFF = "staff"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS: Final = {Role.READ_ONLY: 0, Role.STAFF: 1, Role.ADMIN: 2}


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError("role", value, "expected 'read-only', 'staff' or 'admin'") from None


def _check_text(field: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValidationError(field, value, f"a non-empty string of at most {limit} characters")


@attrs.frozen(kw_only=True)
class Staff:
    """The staff member the host's ``authenticate`` returns: ``id`` is what every write
    records as its author; ``locale`` (optional) formats money and dates for them."""

    id: str
    name: str
    role: Role = attrs.field(default=Role.STAFF, converter=_role)
    locale: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_text("id", self.id, 200)
        _check_text("name", self.name, 200)
        if self.locale is not None:
            from revcrm.web._format import check_locale

            check_locale(self.locale)

    def can(self, needed: Role) -> bool:
        return self.role.allows(needed)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"\x00".join(parts), hashlib.sha256).digest()


class SessionKeys:
    """The signed session cookie and the CSRF token bound to it.

    The cookie is ``<random session id>.<hmac>``; the token of a form is
    ``hmac(secret, "csrf", session id, staff id)``, so a token is good only for its
    session and its staff member, and a cookie or token made without the secret fails.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = _mac(secret, b"revcrm.web session")

    def new_cookie(self) -> tuple[str, str]:
        sid = secrets.token_urlsafe(24)
        return sid, f"{sid}.{_b64(_mac(self._key, b'cookie', sid.encode()))}"

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a cookie this app signed, else None."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 200:
            return None
        sid, sig = cookie.split(".")
        expected = _b64(_mac(self._key, b"cookie", sid.encode()))
        return sid if secrets.compare_digest(sig, expected) else None

    def csrf_token(self, sid: str, staff_id: str) -> str:
        return _b64(_mac(self._key, b"csrf", sid.encode(), staff_id.encode()))

    def check_csrf(self, sid: str | None, staff_id: str, token: str | None) -> bool:
        if sid is None or not token:
            return False
        return secrets.compare_digest(token, self.csrf_token(sid, staff_id))


class Sealer:
    """Values sealed for a URL: encrypted (HMAC-SHA256 in counter mode as the key
    stream) and then authenticated (HMAC-SHA256 over nonce and cipher text).

    Only this app (holding the secret) can read or make them; a tampered value is None.
    """

    def __init__(self, secret: bytes) -> None:
        self._enc = _mac(secret, b"revcrm.web seal encrypt")
        self._auth = _mac(secret, b"revcrm.web seal authenticate")

    def _stream(self, nonce: bytes, n: int) -> bytes:
        out = bytearray()
        counter = 0
        while len(out) < n:
            out += _mac(self._enc, nonce, counter.to_bytes(8, "big"))
            counter += 1
        return bytes(out[:n])

    def seal(self, purpose: str, value: object) -> str:
        plain = json.dumps(value, separators=(",", ":")).encode("utf-8")
        nonce = secrets.token_bytes(12)
        cipher = bytes(a ^ b for a, b in zip(plain, self._stream(nonce, len(plain)), strict=True))
        tag = _mac(self._auth, purpose.encode(), nonce, cipher)[:16]
        return _b64(nonce + cipher + tag)

    def unseal(self, purpose: str, token: str | None) -> object:
        if not token or len(token) > 8000:
            return None
        try:
            raw = _unb64(token)
        except (binascii.Error, ValueError):
            return None
        if len(raw) < 28:
            return None
        nonce, cipher, tag = raw[:12], raw[12:-16], raw[-16:]
        expected = _mac(self._auth, purpose.encode(), nonce, cipher)[:16]
        if not secrets.compare_digest(tag, expected):
            return None
        plain = bytes(a ^ b for a, b in zip(cipher, self._stream(nonce, len(cipher)), strict=True))
        try:
            return json.loads(plain.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None

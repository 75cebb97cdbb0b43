"""Token authentication, one lookup for every door: DRF views, the lean poll paths, the events
long-poll, sockets.

Game clients send `Authorization: Token <key>`. The keyword is case-insensitive everywhere
(`token <key>` works on every door, as HTTP authentication schemes are); the key is not.

Two lookups share one rule:

- `user_for_token_key` (DRF views, sockets, the long-poll) reads the database each time and loads
  the player with the user in the same query.
- `token_entry` (the lean poll paths, lobby.fastpath) keeps what it read for `TOKEN_CACHE_SECONDS`
  per process: clients poll every second or two, and the token is the same each time. A token
  deleted, or a user deactivated or deleted, is dropped at once from this process's memory (model
  signals) and within `TOKEN_CACHE_SECONDS` from every other process's.
"""

from __future__ import annotations

import contextlib
import threading
import time

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

TOKEN_KEYWORD = "Token"  # noqa: S105 - the header keyword, not a secret
# How long a process may go on believing a token it has checked: the longest a revocation made in
# another process takes to reach this one.
TOKEN_CACHE_SECONDS = 5.0
# Entries kept at most; beyond it the oldest go first (a cache, not a list of every player).
TOKEN_CACHE_SIZE = 50_000


def split_authorization(header: str) -> tuple[bool, str]:
    """(whether the scheme is `Token`, whatever case, and the key, stripped)."""
    keyword, _, key = header.strip().partition(" ")
    return keyword.lower() == TOKEN_KEYWORD.lower(), key.strip()


def is_token_authorization(header: str | None) -> bool:
    return header is not None and split_authorization(header)[0]


def user_for_token_key(key: str):
    """The active user holding this API token (its player cached on it), or None."""
    token = Token.objects.select_related("user__player").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    # A Django user without a player yet has none here: services.player_for_user makes one.
    with contextlib.suppress(ObjectDoesNotExist):
        token.user._player_cache = token.user.player
    return token.user


def user_for_authorization(header: str):
    """The user of an `Authorization: Token <key>` header value, or None (another scheme, no
    key, an unknown or inactive token)."""
    is_token, key = split_authorization(header)
    if not is_token or not key:
        return None
    return user_for_token_key(key)


class PlayerTokenAuthentication(TokenAuthentication):
    """DRF's token authentication through `user_for_token_key` (DRF already compares the
    keyword case-insensitively, which is the rule above); the caller's player on the request."""

    def authenticate(self, request):
        return _with_player(request, super().authenticate(request))

    def authenticate_credentials(self, key):
        user = user_for_token_key(key)
        if user is None:
            raise AuthenticationFailed("Invalid token.")
        return user, None


class PlayerSessionAuthentication(SessionAuthentication):
    """DRF's session authentication (CSRF enforced as there); the caller's player on the
    request."""

    def authenticate(self, request):
        return _with_player(request, super().authenticate(request))


def _with_player(request, result):
    if result is not None:
        from lobby.services import player_arrived

        player_arrived(request, result[0])
    return result


# --- The cached lookup of the lean paths -----------------------------------------------------


class TokenEntry:
    """What the lean paths need of a token's holder. `pk` and `last_seen_at` let
    `lobby.services.player_touch` take it in place of the player."""

    __slots__ = ("expires", "key", "last_seen_at", "pk", "user_id")

    def __init__(self, key, user_id, player_id, last_seen_at, expires):
        self.key = key
        self.user_id = user_id
        self.pk = player_id
        self.last_seen_at = last_seen_at
        self.expires = expires


_entries: dict[str, TokenEntry] = {}
_lock = threading.Lock()


def cached_token_entry(key: str, now: float | None = None) -> TokenEntry | None:
    """The entry for `key` if this process checked it within TOKEN_CACHE_SECONDS (no I/O)."""
    entry = _entries.get(key)
    if entry is None:
        return None
    if entry.expires < (time.monotonic() if now is None else now):
        with _lock:
            if _entries.get(key) is entry:
                del _entries[key]
        return None
    return entry


def token_entry(key: str) -> TokenEntry | None:
    """The entry for `key`, read from the database unless cached; None for a token that does
    not authenticate a player (unknown, inactive user, or a user without a player yet)."""
    entry = cached_token_entry(key)
    if entry is not None:
        return entry
    row = (
        Token.objects.filter(key=key, user__is_active=True, user__player__isnull=False)
        .values_list("user_id", "user__player__id", "user__player__last_seen_at")
        .first()
    )
    if row is None:
        return None
    entry = TokenEntry(key, row[0], row[1], row[2], time.monotonic() + TOKEN_CACHE_SECONDS)
    with _lock:
        _entries.pop(key, None)
        _entries[key] = entry
        while len(_entries) > TOKEN_CACHE_SIZE:
            del _entries[next(iter(_entries))]
    return entry


def forget_tokens(*, key: str | None = None, user_id: int | None = None) -> None:
    """Drop cached entries of a token, or of every token of a user."""
    with _lock:
        if key is not None:
            _entries.pop(key, None)
        if user_id is not None:
            for stale in [k for k, e in _entries.items() if e.user_id == user_id]:
                del _entries[stale]


def forget_all_tokens() -> None:
    with _lock:
        _entries.clear()


def _token_deleted(sender, instance, **kwargs):
    forget_tokens(key=instance.key)


def _user_changed(sender, instance, **kwargs):
    # A deactivated user must lose its access here at once. Saves that change nothing that
    # matters (a login's last_login) only cost one more lookup.
    if kwargs.get("update_fields") and "is_active" not in kwargs["update_fields"]:
        return
    forget_tokens(user_id=instance.pk)


post_delete.connect(_token_deleted, sender=Token, dispatch_uid="lobby.authentication.token")
post_save.connect(_user_changed, sender=get_user_model(), dispatch_uid="lobby.auth.user_saved")
post_delete.connect(_user_changed, sender=get_user_model(), dispatch_uid="lobby.auth.user_gone")

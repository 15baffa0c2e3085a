"""Signed cookies and XSRF tokens, in the formats the Rust SDK uses, so a
Python app and a Rust app of the same secret read each other's cookies.

A signed value is ``2|VERSION|TIMESTAMP|BASE64(value)|BASE64(HMAC-SHA256)``
(URL-safe base64 without padding), the MAC taken over ``NAME|payload`` with
key ``VERSION``'s secret. An XSRF token is 16 random bytes, masked afresh
for each page as ``2|MASK|MASKED|TIMESTAMP`` in hex (Tornado's format).
"""

import base64
import hashlib
import hmac
import os
import time

from . import host

FORMAT = "2"
MIN_SECRET = 16
MAX_VERSION = 9
FUTURE_SKEW = 300
DAY = 86_400
TOKEN_LEN = 16
MASK_LEN = 4


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text):
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _mac(key, name, payload):
    return hmac.new(key, name.encode("utf-8") + b"|" + payload.encode("utf-8"), hashlib.sha256).digest()


class Signer:
    """Signs with the newest of ``keys`` (``{version: secret}``); verifies
    with any of them."""

    def __init__(self, keys, signing_version=None):
        if not keys:
            raise ValueError("signed cookies need a cookie_secret")
        self.keys = {}
        for version, secret in keys.items():
            secret = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
            if len(secret) < MIN_SECRET:
                raise ValueError("cookie secret %s is shorter than %d bytes" % (version, MIN_SECRET))
            self.keys[int(version)] = secret
        self.signing_version = max(self.keys) if signing_version is None else int(signing_version)
        if self.signing_version not in self.keys:
            raise ValueError("key_version %s has no secret" % signing_version)

    @classmethod
    def from_settings(cls, settings):
        """From the ``cookie_secret`` setting (a string, or Tornado's dict of
        versions with ``key_version``), else from the app's config values
        ``cookie_secret``, ``cookie_secret_2`` … ``cookie_secret_9``."""
        secret = settings.get("cookie_secret")
        if isinstance(secret, dict):
            # Every version verifies; `key_version` (else the newest) signs.
            return cls(dict(secret), settings.get("key_version"))
        if secret:
            return cls({1: secret})
        keys = {}
        for version in range(1, MAX_VERSION + 1):
            name = "cookie_secret" if version == 1 else "cookie_secret_%d" % version
            value = host.config_value(name)
            if value is not None:
                keys[version] = value
        return cls(keys)

    def sign(self, name, value, now=None):
        if isinstance(value, str):
            value = value.encode("utf-8")
        version = self.signing_version
        timestamp = int(time.time() if now is None else now)
        payload = "%s|%d|%d|%s" % (FORMAT, version, timestamp, _b64(value))
        return "%s|%s" % (payload, _b64(_mac(self.keys[version], name, payload)))

    def verify(self, name, signed, max_age_days=31, now=None):
        """The signed value's bytes, or ``None`` if it was tampered with,
        signed for another name or by an unknown key, or is too old."""
        if not signed:
            return None
        try:
            payload, signature = signed.rsplit("|", 1)
            fields = payload.split("|")
            if len(fields) != 4 or fields[0] != FORMAT:
                return None
            key = self.keys.get(int(fields[1]))
            if key is None:
                return None
            if not hmac.compare_digest(_unb64(signature), _mac(key, name, payload)):
                return None
            timestamp = int(fields[2])
            now = int(time.time() if now is None else now)
            if now - timestamp > max_age_days * DAY or timestamp - now > FUTURE_SKEW:
                return None
            return _unb64(fields[3])
        except (ValueError, TypeError):
            return None


def new_token():
    return os.urandom(TOKEN_LEN)


def mask_token(raw):
    mask = os.urandom(MASK_LEN)
    masked = bytes(byte ^ mask[index % MASK_LEN] for index, byte in enumerate(raw))
    return "2|%s|%s|%d" % (mask.hex(), masked.hex(), int(time.time()))


def unmask_token(text):
    """The raw token of a masked (``2|…``) or bare hex token, or ``None``."""
    if not text:
        return None
    fields = text.strip('"').split("|")
    try:
        if fields[0] == "2":
            if len(fields) < 3:
                return None
            mask, masked = bytes.fromhex(fields[1]), bytes.fromhex(fields[2])
        else:
            mask, masked = bytes(MASK_LEN), bytes.fromhex(fields[0])
    except ValueError:
        return None
    if len(mask) != MASK_LEN or len(masked) != TOKEN_LEN:
        return None
    return bytes(byte ^ mask[index % MASK_LEN] for index, byte in enumerate(masked))


def tokens_match(raw, submitted):
    other = unmask_token(submitted)
    return other is not None and hmac.compare_digest(raw, other)

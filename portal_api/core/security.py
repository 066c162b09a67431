"""Tokens and personal identifiers.

Tokens (personal API tokens and the short-lived bearer tokens ``POST /token`` hands
out) are 256-bit random strings shown once and stored only as HMAC-SHA256 under a
server key. A slow password hash (bcrypt, argon2) exists to make guessing a
*low-entropy* secret expensive; a 256-bit random token cannot be guessed at any
speed, so a slow hash would only add CPU to every request and forbid looking the
token up by its hash. The key (not stored in the database) means a copy of the
database alone cannot even confirm a candidate token. Lookups go by the keyed hash
through a unique index, so no per-row comparison is made in Python.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from validate_docbr import CPF

PERSONAL_TOKEN_PREFIX = "vd1p_"
ACCESS_TOKEN_PREFIX = "vd1a_"
_TOKEN_SHAPE = re.compile(r"^vd1[pa]_[A-Za-z0-9_\-]{43}$")


def new_token(prefix: str) -> str:
    """A fresh token: a recognisable prefix (secret scanners, the wrong kind refused
    early) and 32 random bytes."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(key: bytes, token: str) -> str:
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def looks_like(token: str, prefix: str) -> bool:
    return token.startswith(prefix) and bool(_TOKEN_SHAPE.match(token))


_CPF = CPF()


def normalize_cpf(text: str) -> str:
    """Eleven digits with valid check digits (punctuation accepted), or ValueError."""
    digits = re.sub(r"[.\-\s]", "", text or "")
    if not re.fullmatch(r"\d{11}", digits) or not _CPF.validate(digits):
        raise ValueError(f"CPF inválido: {text!r}")
    return digits


def mask_cpf(cpf: str) -> str:
    """``***.456.789-**``: the middle six digits only, as gov.br shows a CPF."""
    return f"***.{cpf[3:6]}.{cpf[6:9]}-**"

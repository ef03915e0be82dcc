"""Real signing keys (generated per test session) and CDS Hooks client JWTs for the auth tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://ehr.example.org"
BASE_URL = "https://cds.example.org"
SERVICE_PATH = "/cds-services/lbp-patient-view"
# Auth on needs an issuer to trust (settings_check). Tests of what a caller WITHOUT a valid JWT
# gets name this one: its JWKS file is never read, as none of their calls gets that far.
UNREAD_ISSUERS = {ISSUER: "unread-jwks.json"}


@dataclass(frozen=True)
class SigningKey:
    """A client's private key, the alg it signs with and the kid its JWKS publishes."""

    private: Any
    alg: str
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algo = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        jwk: dict[str, Any] = json.loads(algo.to_jwk(public))
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return jwk

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(
        self,
        path: str = SERVICE_PATH,
        *,
        base_url: str = BASE_URL,
        headers: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **overrides: Any,
    ) -> str:
        """A token shaped like the CDS Hooks sandbox's: aud = the URL called, exp = now + 300."""
        claims = client_claims(overrides.pop("aud", base_url + path), **overrides)
        for name in drop:
            claims.pop(name, None)
        header = {"kid": self.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=header)


def client_claims(aud: Any, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": aud,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    return claims


def es_key(kid: str = "es384-key", curve: ec.EllipticCurve | None = None) -> SigningKey:
    curve = curve or ec.SECP384R1()
    alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[curve.name]
    return SigningKey(ec.generate_private_key(curve), alg, kid)


def rs_key(kid: str = "rs384-key", alg: str = "RS384", bits: int = 2048) -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=bits), alg, kid)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: `none`, or HS256 keyed with a public key's PEM."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

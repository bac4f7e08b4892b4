"""The tenants registry: the subaccounts, and the auth tokens that sign their webhooks.

A tenants file is TOML, one ``[[tenants]]`` table per subaccount::

    [[tenants]]
    account_sid = "AC..."            # the subaccount
    name = "Acme Dental"
    parent_account_sid = "AC..."     # the ISV's parent account
    cps_limit = 1                    # calls per second Twilio allows this subaccount
    auth_token_env = "ACME_TOKEN"    # or auth_token = "...", or auth_token_file = "/path"
    # secondary_auth_token_env = ... # during a token rotation, accepted as well
    # fetch_subaccount_tokens = true # on a parent: fetch unknown subaccounts' tokens from Twilio

    [[shared_keys]]                  # secrets for X-Twilio-Webhooks-Signature-Settings
    id = "webhooks_sharedkey_..."
    secret_env = "TWILIO_SHARED_KEY" # or secret = "...", or secret_file = "/path"

Tokens are ``SecretStr``: they never appear in logs, reprs, topics or tables.
"""

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from voicepulse.errors import ConfigError

__all__ = ["Tenant", "TenantRegistry", "load_tenants"]

_ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"


@dataclass(frozen=True, slots=True)
class Tenant:
    account_sid: str
    name: str
    parent_account_sid: str | None
    cps_limit: float
    auth_tokens: tuple[SecretStr, ...]
    fetch_subaccount_tokens: bool = False
    secrets: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    """The tokens as HMAC keys (primary first), computed once."""

    def __post_init__(self) -> None:
        keys = tuple(token.get_secret_value().encode() for token in self.auth_tokens)
        object.__setattr__(self, "secrets", keys)


class TenantRegistry(Mapping[str, Tenant]):
    """Tenants by AccountSid; immutable, so a reload swaps a whole registry at once."""

    def __init__(
        self, tenants: Mapping[str, Tenant], shared_keys: Mapping[str, SecretStr] | None = None
    ) -> None:
        self._tenants = dict(tenants)
        self.shared_keys: Mapping[str, SecretStr] = dict(shared_keys or {})

    def __getitem__(self, account_sid: str) -> Tenant:
        return self._tenants[account_sid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tenants)

    def __len__(self) -> int:
        return len(self._tenants)


class _TokenRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_sid: str = Field(pattern=_ACCOUNT_SID)
    name: str = Field(min_length=1)
    parent_account_sid: str | None = Field(default=None, pattern=_ACCOUNT_SID)
    cps_limit: float = Field(default=1.0, gt=0)
    auth_token: SecretStr | None = None
    auth_token_env: str | None = None
    auth_token_file: Path | None = None
    secondary_auth_token: SecretStr | None = None
    secondary_auth_token_env: str | None = None
    secondary_auth_token_file: Path | None = None
    fetch_subaccount_tokens: bool = False

    @model_validator(mode="after")
    def _one_primary_source(self) -> "_TokenRef":
        given = [self.auth_token, self.auth_token_env, self.auth_token_file]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of auth_token, auth_token_env, auth_token_file")
        return self


class _SharedKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    secret: SecretStr | None = None
    secret_env: str | None = None
    secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "_SharedKey":
        if sum(v is not None for v in (self.secret, self.secret_env, self.secret_file)) != 1:
            raise ValueError("give exactly one of secret, secret_env, secret_file")
        return self


class _TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: list[_TokenRef] = Field(default_factory=list)
    shared_keys: list[_SharedKey] = Field(default_factory=list)


def load_tenants(path: Path) -> TenantRegistry:
    """Read and check a tenants file; every problem is a :class:`ConfigError` naming the place."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the tenants file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"tenants file {path} is not valid TOML: {exc}") from exc
    try:
        parsed = _TenantsFile.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"tenants file {path}: {problems}") from exc
    tenants: dict[str, Tenant] = {}
    for index, ref in enumerate(parsed.tenants):
        where = f"tenants file {path}, tenants[{index}] ({ref.account_sid})"
        if ref.account_sid in tenants:
            raise ConfigError(f"{where}: account_sid listed twice")
        tokens = [_resolve(ref.auth_token, ref.auth_token_env, ref.auth_token_file, where)]
        secondary = (
            ref.secondary_auth_token,
            ref.secondary_auth_token_env,
            ref.secondary_auth_token_file,
        )
        if any(v is not None for v in secondary):
            tokens.append(_resolve(*secondary, where))
        tenants[ref.account_sid] = Tenant(
            account_sid=ref.account_sid,
            name=ref.name,
            parent_account_sid=ref.parent_account_sid,
            cps_limit=ref.cps_limit,
            auth_tokens=tuple(tokens),
            fetch_subaccount_tokens=ref.fetch_subaccount_tokens,
        )
    shared: dict[str, SecretStr] = {}
    for index, key in enumerate(parsed.shared_keys):
        where = f"tenants file {path}, shared_keys[{index}] ({key.id})"
        if key.id in shared:
            raise ConfigError(f"{where}: id listed twice")
        shared[key.id] = _resolve(key.secret, key.secret_env, key.secret_file, where)
    return TenantRegistry(tenants, shared)


def _resolve(value: SecretStr | None, env: str | None, file: Path | None, where: str) -> SecretStr:
    if value is not None:
        token = value.get_secret_value()
    elif env is not None:
        if env not in os.environ:
            raise ConfigError(f"{where}: environment variable {env} is not set")
        token = os.environ[env]
    elif file is not None:
        try:
            token = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read token file {file}: {exc}") from exc
    else:
        raise ConfigError(f"{where}: no token given")
    if not re.fullmatch(r"\S+", token):
        raise ConfigError(f"{where}: the secret is empty or contains white space")
    return SecretStr(token)

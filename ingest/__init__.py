"""Ingest: the webhook receiver, signature checks and the tenants registry."""

from ingest.app import Receiver, create_app, tenant_source
from ingest.server import HttpServerStage
from ingest.signature import is_valid_signature, sign, verify
from ingest.tenant_source import TenantSource
from ingest.tenants import Tenant, TenantRegistry, load_tenants

__all__ = [
    "HttpServerStage",
    "Receiver",
    "Tenant",
    "TenantRegistry",
    "TenantSource",
    "create_app",
    "is_valid_signature",
    "load_tenants",
    "sign",
    "tenant_source",
    "verify",
]

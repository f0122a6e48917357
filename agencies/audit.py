"""Audit operations of the SDK (mixed into agencies.client.AgencyClient)."""

from __future__ import annotations


class AuditMixin:
    """Audit calls; relies on BaseClient's _call/_stream/_pages and stubs."""

"""Exchange operations of the SDK (mixed into agencies.client.AgencyClient)."""

from __future__ import annotations


class ExchangeMixin:
    """Exchange calls; relies on BaseClient's _call/_stream/_pages and stubs."""

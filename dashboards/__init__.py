"""Dashboards: web pages, the JSON API and charts for operators and tenants."""

__all__: list[str] = []

"""Processors: calls assembled from their events, and per-subaccount health windows."""

from processors.health import HealthHandler, MinuteCounts
from processors.vocabulary import direction_group

__all__ = ["HealthHandler", "MinuteCounts", "direction_group"]

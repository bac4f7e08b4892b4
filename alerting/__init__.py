"""Alerting: rules judged over health windows, silences, and the notifiers they feed."""

"""Alerting: rules judged over health windows, silences, and the notifiers they feed.

The evaluator (:mod:`alerting.evaluator`) is a pure function of the closed rows of
``voicepulse.health``; the stage (:mod:`alerting.stage`) feeds it from the bus and publishes
its changes to ``voicepulse.alerts``, where the notifiers and the warehouse sink read them.
"""

from alerting.evaluator import Evaluator, Series
from alerting.rules import Override, Rule, RuleSet, default_rules, default_rules_text, load_rules

__all__ = [
    "Evaluator",
    "Override",
    "Rule",
    "RuleSet",
    "Series",
    "default_rules",
    "default_rules_text",
    "load_rules",
]

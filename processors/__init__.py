"""Processors: calls assembled from their events, and per-subaccount health windows."""

from processors.engine import EngineConfig, Shard
from processors.isv import IsvAggregator, IsvHandler, isv_group
from processors.kafka import KafkaProcessorStage
from processors.processor import Output, Processor
from processors.stage import INPUT_TOPICS, ProcessorStage
from processors.vocabulary import direction_group

__all__ = [
    "INPUT_TOPICS",
    "EngineConfig",
    "IsvAggregator",
    "IsvHandler",
    "KafkaProcessorStage",
    "Output",
    "Processor",
    "ProcessorStage",
    "Shard",
    "direction_group",
    "isv_group",
]

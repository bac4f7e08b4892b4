"""Processors: calls assembled from their events, and per-subaccount health windows."""

from processors.engine import EngineConfig, Shard
from processors.isv import IsvAggregator, IsvHandler, isv_group
from processors.kafka import KafkaProcessorStage
from processors.processor import Output, Processor
from processors.stage import INPUT_TOPICS, ProcessorHandler, processor_stage
from processors.vocabulary import direction_group

__all__ = [
    "INPUT_TOPICS",
    "EngineConfig",
    "IsvAggregator",
    "IsvHandler",
    "KafkaProcessorStage",
    "Output",
    "Processor",
    "ProcessorHandler",
    "Shard",
    "direction_group",
    "isv_group",
    "processor_stage",
]

"""Exports of the event log: NATS JetStream streaming (through the outbox)."""

from __future__ import annotations

from playloop.export.nats import OutboxPublisher, PublisherStats

__all__ = ["OutboxPublisher", "PublisherStats"]

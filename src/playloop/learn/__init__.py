"""The learning layer: projections of the event log that feed back into the next run."""

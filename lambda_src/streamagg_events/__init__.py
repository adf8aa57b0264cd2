"""The event-metrics pipeline: Kinesis JSON events to exact per-variant window counters."""

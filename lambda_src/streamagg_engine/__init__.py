"""The engine every pipeline shares: the handler bootstrap, the settings parser, batch
handling, the retries of refused writes, logs, metrics, SDK settings, DynamoDB JSON, stream
records, windows, the archive format and the shared AWS adapters.

It imports no pipeline; each pipeline (``aggregator``, ``streamagg_events``,
``streamagg_bundles``, ``streamagg_projection``) imports it and nothing of another pipeline.
"""

"""DLQ redrive for the stream aggregator: ``python -m redrive`` (see :mod:`redrive.cli`).

A message in the aggregator's dead-letter queue names a failed batch's shard and
sequence range, not its records. The redrive reads that range back from the table's
stream and replays it through the aggregator:

* :mod:`redrive.messages`: on-failure messages, parsed (pure);
* :mod:`redrive.stream`: the range read back from the stream, Lambda-shaped, and the
  mapping's filter;
* :mod:`redrive.watermarks`: what a replay will add, read off the snapshots' watermarks;
* :mod:`redrive.replay`: batches through the handler (in-process) or the function;
* :mod:`redrive.run`: one run over the queue; :mod:`redrive.cli`: the command.
"""

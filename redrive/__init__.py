"""DLQ recovery for every pipeline: ``python -m redrive`` (see :mod:`redrive.cli`).

A stream pipeline's DLQ message names a failed batch's shard and sequence range, not its
records: the redrive reads the range back from the stream and replays it through the
pipeline's handler. The bundler's DLQ holds its messages themselves: they go back to the
source queue. The common core:

* :mod:`redrive.messages`: on-failure messages (DynamoDB and Kinesis), parsed (pure);
* :mod:`redrive.ranges`: a range read back, and a Lambda record's position;
* :mod:`redrive.stream`: a DynamoDB stream range, Lambda-shaped, and the mapping's filter;
* :mod:`redrive.replay`: batches through a handler (in-process) or the function;
* :mod:`redrive.run`: one run over a stream pipeline's DLQ, its verdicts and summary;
* :mod:`redrive.deployment`, :mod:`redrive.cli`: what the stack says, and the command.

One module per pipeline, none importing another: :mod:`redrive.usage` (with
:mod:`redrive.watermarks`), :mod:`redrive.projection`, :mod:`redrive.events`,
:mod:`redrive.bundles`.
"""

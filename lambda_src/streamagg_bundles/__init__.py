"""S3-object bundles: S3 object-created events from SQS, bundled once into gzip tarballs.

The second pipeline of the engine (seed 001): ``handler.handler`` is the Lambda entry
point; ``docs/bundles.md`` describes the design, its guarantees and its limits.
"""

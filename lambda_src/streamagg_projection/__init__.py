"""The projection pipeline: a source table's stream -> a read-optimised dashboard table."""

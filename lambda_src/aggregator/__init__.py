"""Stream aggregator Lambda: DynamoDB Streams to windowed snapshots, refills and an archive."""

"""Data layer: degradation synthesis, webdataset shard writing, streaming readers (built in the data issue)."""

"""Writing shards: an image tree or ImageNet's archives read, checked and written as WebDataset shards (`oak prepare`),
the demo's synthetic tree (`oak demo-data`), and re-reading what was written (`oak verify`)."""

"""The shard format both sides share: the tar files (`tar.py`), their info file (`info.py`) and ImageNet's classes
(`imagenet.py`). Writing shards is `oak.preparing`; reading them for training, `oak.loading`."""

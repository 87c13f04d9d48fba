"""Reading shards for training and evaluation: the loader, the Lightning data module, and the transforms on the CPU or the device."""

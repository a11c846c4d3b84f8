"""python -m indexer.training --config configs/arcface-kd.toml"""
from indexer.training.train import main

raise SystemExit(main())

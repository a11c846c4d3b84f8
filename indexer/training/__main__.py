"""python -m indexer.training [train] --config configs/arcface-kd.toml (or crossfit, soup, export: see --help)."""
from indexer.training.cli import main

raise SystemExit(main())

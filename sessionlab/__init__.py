"""The `sessionlab` command line: the top layer, the only package that may import every other
(README, "Packages"; the layers are checked by `lint-imports`)."""

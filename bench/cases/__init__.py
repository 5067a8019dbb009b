"""The cases of `make bench`. A case measures one thing against a migrated
database and returns (or yields, row by row) plain data."""

"""The cases of `make bench`; compactor/ and citus/ hold those of the
compactor study and of tally on Citus. A case measures one thing against a
migrated database and returns (or yields, row by row) plain data."""

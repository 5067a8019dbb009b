"""The cases of `make bench`; compactor/ holds those of the compactor
study. A case measures one thing against a migrated database and returns
(or yields, row by row) plain data."""

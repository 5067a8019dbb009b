"""The client's suite: ``Tally`` and ``AsyncTally`` and their group commit,
every test run on both sides (see sides.py)."""

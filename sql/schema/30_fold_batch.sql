-- Scratch space of the fold in progress (folds are serialized): the moved
-- deltas pre-aggregated per (counter, key, minute), the finest bucket every
-- coarser one is a union of.
CREATE UNLOGGED TABLE tally.fold_batch (
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    minute timestamptz NOT NULL,  -- noqa: RF04
    delta bigint NOT NULL,
    n bigint NOT NULL
);

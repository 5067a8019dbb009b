-- Every repair tally.reconcile made, so history stays explainable: a
-- correction delta of the total (granularity 'all') or a rebuilt bucket of a
-- coarser granularity, why, when and by whom.
CREATE TABLE tally.corrections (
    id bigint GENERATED ALWAYS AS IDENTITY,
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    granularity text NOT NULL,
    bucket timestamptz,
    delta bigint NOT NULL,
    reason text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by name NOT NULL DEFAULT session_user,
    CONSTRAINT corrections_pkey PRIMARY KEY (id),
    CONSTRAINT corrections_counter_id_fkey FOREIGN KEY (counter_id) REFERENCES tally.counters (id) ON DELETE CASCADE
);

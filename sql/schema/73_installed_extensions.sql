-- The extensions the install needs (plpython3u, pg_partman, and pg_cron in
-- the database cron.database_name names) and whether tally created them: a
-- downgrade drops only those.
CREATE TABLE tally.installed_extensions (
    extname text NOT NULL,
    created_by_tally boolean NOT NULL,
    CONSTRAINT installed_extensions_pkey PRIMARY KEY (extname)
);

-- tally's roles (tally_writer, tally_reader, tally_admin) and whether tally
-- created them: roles are cluster-wide, another database may have created
-- them already. A downgrade drops only those it created, and keeps one
-- another database still uses.
CREATE TABLE tally.installed_roles (
    rolname name NOT NULL,
    created_by_tally boolean NOT NULL,
    CONSTRAINT installed_roles_pkey PRIMARY KEY (rolname)
);

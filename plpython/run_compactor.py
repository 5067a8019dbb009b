# The compactor's module, from its one home: the body of tally._compactor()
# (plpython/compact.py), read from the catalog and run here; `compactor`
# then holds its functions. (`plpy`: PL/Python's module, a global of the
# procedure body this file is included in.)
compactor = {"__name__": "tally._compactor"}
_body = plpy.execute(  # noqa: F821
    "SELECT p.prosrc FROM pg_catalog.pg_proc AS p"
    " WHERE p.oid OPERATOR(pg_catalog.=) 'tally._compactor()'::pg_catalog.regprocedure"
)[0]["prosrc"]
exec(compile(_body, "tally._compactor", "exec"), compactor)

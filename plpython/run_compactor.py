# The compactor's module, from its one home: the body of tally._compactor()
# (plpython/compact.py), read from the catalog and run here once per session
# and version of that function (kept in PL/Python's session dictionary GD
# under its row version: a migration that makes it again changes that);
# `compactor` then holds its functions. (`plpy` and `GD`: globals of the
# PL/Python procedure body this file is included in.)
_version = plpy.execute(  # noqa: F821
    "SELECT p.oid::pg_catalog.text OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) p.xmin::pg_catalog.text AS v"
    " FROM pg_catalog.pg_proc AS p WHERE p.oid OPERATOR(pg_catalog.=) 'tally._compactor()'::pg_catalog.regprocedure"
)[0]["v"]
_loaded = GD.get("tally._compactor")  # noqa: F821
if _loaded is None or _loaded[0] != _version:
    _body = plpy.execute(  # noqa: F821
        "SELECT p.prosrc FROM pg_catalog.pg_proc AS p"
        " WHERE p.oid OPERATOR(pg_catalog.=) 'tally._compactor()'::pg_catalog.regprocedure"
    )[0]["prosrc"]
    _module = {"__name__": "tally._compactor"}
    exec(compile(_body, "tally._compactor", "exec"), _module)
    _loaded = GD["tally._compactor"] = (_version, _module)  # noqa: F821
compactor = _loaded[1]

"""clear-all-dbs.py empties the six DRAWS tables and nothing else."""

from draws import tables
from draws.bus import Bus
from draws.ous import StatusTable


def test_clears_draws_tables_and_keeps_indexes_and_other_databases(actors, server):
    foreign = server.db("not-draws")
    foreign.create()
    foreign.put({"_id": "keep-me", "x": 1})
    StatusTable(server).reset("2015.1.00657.S", "uid://X1/X1/Xb0")
    Bus(server).send("a.b", {})
    indexes_before = server.db("msgq").all_docs(startkey="_design/", endkey="_design0")["rows"]

    res = actors.run("clear-all-dbs.py")
    assert res.returncode == 0, res.stderr
    for name in tables.ALL:
        assert server.db(name).ids() == [], name
    assert server.db("msgq").all_docs(startkey="_design/", endkey="_design0")["rows"] == indexes_before
    assert indexes_before
    assert foreign.get("keep-me")["x"] == 1
    foreign.server.request("DELETE", "not-draws")

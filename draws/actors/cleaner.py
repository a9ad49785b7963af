"""clear-all-dbs: empty the DRAWS tables, keeping their design documents."""

from .. import tables


def clear_all(server):
    """Delete every non-design document of the six tables; returns counts."""
    counts = {}
    for name in tables.ALL:
        db = server.db(name)
        deleted = 0
        while True:
            rows = db.all_docs(limit=2000)["rows"]
            doomed = [{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True}
                      for r in rows if not r["id"].startswith("_design/")]
            if not doomed:
                break
            db.bulk(doomed)
            deleted += len(doomed)
        counts[name] = deleted
    return counts


class Cleaner:
    def __init__(self, ctx):
        self.ctx = ctx

    def run(self):
        for table, count in clear_all(self.ctx.server).items():
            self.ctx.log.info("%-18s %d document(s) deleted", table, count)

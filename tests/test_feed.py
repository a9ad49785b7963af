"""The continuous changes feed: order, resumption after an outage, health, stop."""

import shutil
import threading

from draws.couch import Server
from draws.feed import Feed
from support import server_url, start_server, wait_for


class Seen:
    def __init__(self):
        self.ids, self.health = [], []
        self.lock = threading.Lock()

    def doc(self, doc):
        with self.lock:
            self.ids.append(doc["_id"])

    def health_changed(self, error):
        self.health.append(error)


def test_changes_arrive_in_order_and_the_feed_resumes_after_couchdb_restarts(tmp_path):
    url = server_url()
    proc = start_server(url, tmp_path / "couch", log_file=tmp_path / "couch.log", in_memory=False)
    db = Server(url).db("things")
    db.create()
    seen = Seen()
    feed = Feed(db, on_health=seen.health_changed, heartbeat=1.0)
    feed.subscribe(seen.doc)
    feed.start()
    try:
        for n in range(20):
            db.put({"_id": f"a{n:02d}"})
        wait_for(lambda: len(seen.ids) == 20, 30, what="20 changes")
        assert seen.ids == [f"a{n:02d}" for n in range(20)]
        assert seen.health and seen.health[0] is None   # connected

        proc.kill()
        proc.wait()
        wait_for(lambda: any(e is not None for e in seen.health), 30, what="the feed to notice")
        # Written while the feed was cut off: it must still see them, once each.
        proc = start_server(url, tmp_path / "couch", log_file=tmp_path / "couch.log", in_memory=False)
        for n in range(5):
            db.put({"_id": f"b{n}"})
        wait_for(lambda: len(seen.ids) == 25, 30, what="the changes made after the restart")
        assert seen.ids[20:] == [f"b{n}" for n in range(5)]
        assert seen.health[-1] is None   # connected again
    finally:
        feed.stop()
        proc.kill()
        proc.wait()


def test_a_stopped_feed_delivers_nothing_more(server):
    db = server.db("msgq")
    seen = Seen()
    feed = Feed(db, heartbeat=1.0)
    feed.subscribe(seen.doc)
    feed.start()
    db.put({"_id": "first"})
    wait_for(lambda: seen.ids == ["first"], 30, what="the first change")
    feed.stop()
    db.put({"_id": "second"})
    wait_for(lambda: not feed.alive, 10, what="the feed thread to end (at the next heartbeat)")
    assert seen.ids == ["first"]


def test_a_broken_subscriber_does_not_stop_the_others(server):
    db = server.db("msgq")
    seen = Seen()
    feed = Feed(db)
    feed.subscribe(lambda doc: 1 / 0)
    feed.subscribe(seen.doc)
    feed.start()
    try:
        db.put({"_id": "one"})
        db.put({"_id": "two"})
        wait_for(lambda: seen.ids == ["one", "two"], 30, what="both changes")
    finally:
        feed.stop()


def test_a_table_that_lost_its_data_is_followed_again_from_its_new_beginning(tmp_path, caplog):
    """The server wiped and restarted: sequences start again at 0, so the old
    place in the feed would skip every change until the new table caught up."""
    url = server_url()
    data = tmp_path / "couch"
    proc = start_server(url, data, log_file=tmp_path / "couch.log", in_memory=False)
    db = Server(url).db("things")
    db.create()
    lost = []

    def recreate():   # what the bus does: make the tables again
        lost.append(True)
        db.create()

    # Two followers: one finds the table gone and makes it, the other finds it made anew.
    seen = [Seen(), Seen()]
    feeds = [Feed(db, heartbeat=1.0, on_lost=recreate) for _ in seen]
    for feed, s in zip(feeds, seen):
        feed.subscribe(s.doc)
        feed.start()
    try:
        for n in range(30):
            db.put({"_id": f"old{n:02d}"})
        wait_for(lambda: all(len(s.ids) == 30 for s in seen), 30, what="30 changes")
        proc.kill()
        proc.wait()
        shutil.rmtree(data)
        proc = start_server(url, data, log_file=tmp_path / "couch.log", in_memory=False)
        wait_for(lambda: db.exists(), 30, what="a follower to make the table again")
        db.put({"_id": "new0"})
        db.put({"_id": "new1"})
        wait_for(lambda: all(s.ids[30:] == ["new0", "new1"] for s in seen), 30,
                 what="both followers to see the new table's changes")
    finally:
        for feed in feeds:
            feed.stop()
        proc.kill()
        proc.wait()
    assert lost and caplog.text.count("things at") >= 2 and "lost its data" in caplog.text

"""The embedded server (draws/pouchdb-server.js) answers as Apache CouchDB does
where PouchDB Server 4.2.0 did not: Mango selectors with $or & co. under a field."""

import pytest
import requests

from draws.couch import Server

R, P = "ReadyForProcessing", "Processing"
DOCS = [
    {"_id": "a", "state": R, "substate": None},
    {"_id": "b", "state": R, "substate": ""},
    {"_id": "c", "state": R},
    {"_id": "d", "state": R, "substate": "PipelineCalibration"},
    {"_id": "e", "state": P, "substate": ""},
    {"_id": "f", "state": R, "substate": "x", "flags": {"n": 1}},
    {"_id": "g", "state": R, "substate": "", "flags": {"n": 2}},
]

# (selector, the ids Apache CouchDB 3.3 finds: a field-level combination
# means the same combination of that field's conditions at the top level)
CASES = [
    # the original mockup's AQUA Batch Helper
    ({"state": R, "substate": {"$or": [{"$eq": None}, {"$eq": ""}]}}, "abg"),
    ({"substate": {"$or": [None, ""]}}, "abeg"),                           # bare values: $eq
    ({"state": R, "substate": {"$nor": [None, ""]}}, "cdf"),               # a missing field too
    ({"substate": {"$and": [{"$gt": ""}, {"$regex": "^Pipe"}]}}, "d"),
    ({"state": R, "substate": {"$not": {"$eq": ""}}}, "acdf"),
    ({"flags": {"n": {"$or": [1, 2]}}}, "fg"),                            # under a sub-field
    ({"substate": {"$gt": "", "$or": [{"$eq": "x"}, {"$regex": "^P"}]}}, "df"),
    ({"state": {"$or": [R, P]}, "substate": {"$or": [None, ""]}}, "abeg"),   # two $or side by side
    ({"$or": [{"state": P}, {"substate": "x"}], "substate": {"$or": [None, ""]}}, "e"),
    ({"$or": [{"substate": {"$or": [None]}}, {"state": P}]}, "ae"),        # inside a top-level $or
    ({"$and": [{"substate": {"$or": [""]}}, {"flags.n": {"$gt": 1}}]}, "g"),
    ({"state": R, "$or": [{"substate": None}, {"substate": ""}]}, "abg"),  # unchanged forms still work
    ({"state": P}, "e"),
    ({"$or": [{"substate": {"$regex": "^P"}}, {"substate": {"$ne": ""}, "state": P}]}, "d"),   # PouchDB failed
]


@pytest.fixture(scope="module")
def db(couch_url):
    database = Server(couch_url, max_wait=30).db("selectors-test")
    database.create()
    for doc in DOCS:
        if not database.get_or_none(doc["_id"]):
            database.put(dict(doc))
    return database


def found(db, selector):
    return "".join(sorted(doc["_id"] for doc in db.find(selector, fields=["_id"])))


@pytest.mark.parametrize("selector,expected", CASES, ids=[str(i) for i in range(len(CASES))])
def test_combinations_under_a_field_match_as_on_couchdb(db, selector, expected):
    assert found(db, selector) == expected


def test_combinations_under_a_field_with_an_index_and_in_explain(db, couch_url):
    db.ensure_index(["state", "substate"], "state-substate")
    assert found(db, CASES[0][0]) == "abg"
    explained = requests.post(f"{couch_url}/{db.name}/_explain", json={"selector": CASES[0][0]}, timeout=10)
    assert explained.status_code == 200 and "$or" in explained.json()["selector"]


def test_a_combination_that_is_not_a_list_is_refused_as_on_couchdb(db, couch_url):
    for op in ("$or", "$and", "$nor"):
        resp = requests.post(f"{couch_url}/{db.name}/_find",
                             json={"selector": {"substate": {op: {"$eq": ""}}}}, timeout=10)
        assert resp.status_code == 400 and op in resp.json()["reason"], resp.text

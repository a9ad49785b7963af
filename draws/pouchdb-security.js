// A secured PouchDB Server that is closed, and that no request can wedge.
//
// PouchDB Server 4.2.0 with an admin configured still answered anonymous
// clients a great deal: `_find` and `_bulk_get` with whole documents
// (whatever the database's _security), `_all_dbs`, `GET /<db>/_index`,
// `_utils`, and let them create indexes. `closedToAnonymous` answers 401
// to every request without valid credentials once the server has an
// admin, as CouchDB does with `require_valid_user`, except `GET /` (which
// says the server is up) and `POST /_session` (a log-in: its body carries
// the credentials). A user who is not an admin creating a database gets
// 401 too, where PouchDB Server never answered.
//
// And one refused database deletion (an anonymous `DELETE /ngas`) wedged
// the server: PouchDB Server creates and deletes databases one at a time
// on a single promise chain, and a rejected step left that chain rejected
// for good, so every later request that opens a database waited for ever.
// `serialise` runs the steps one at a time too, but a failed step fails
// only its own request. And a deletion that is refused leaves the
// database open, where it was forgotten before the deletion was tried.
"use strict";

function closedToAnonymous(app) {
  return function (req, res, next) {
    const admins = app.couchConfig.getSection("admins") || {};
    const userCtx = (req.couchSession && req.couchSession.userCtx) || {};
    if (Object.keys(admins).length === 0) {   // admin party: nothing to close
      return next();
    }
    if (!userCtx.name && !(req.method === "GET" && req.path === "/")
        && !(req.method === "POST" && req.path === "/_session")) {
      res.setHeader("WWW-Authenticate", 'Basic realm="server"');
      return res.status(401).json({ error: "unauthorized", reason: "Authentication required." });
    }
    // PouchDB Server never answered a database creation by a user who is not an admin.
    if (req.method === "PUT" && /^\/[^/]+\/?$/.test(req.path)
        && (userCtx.roles || []).indexOf("_admin") < 0) {
      return res.status(401).json({ error: "unauthorized", reason: "You are not a server admin." });
    }
    return next();
  };
}

// Runs the functions given to it one after the other; each call returns
// a promise of its own function's result.
function serialise() {
  let last = Promise.resolve();
  return function (step) {
    const result = last.then(step);
    last = result.catch(function () {});   // the next step runs either way
    return result;
  };
}

// Replacements for express-pouchdb's create-or-delete-dbs.js: the same
// cache of open databases, on a chain that a failure does not break.
function databaseCache() {
  const inTurn = serialise();

  function cacheOf(PouchDB) {
    if (!PouchDB.__dbCacheMap) {
      PouchDB.__dbCacheMap = new Map();
    }
    return PouchDB.__dbCacheMap;
  }

  function getOrCreateDB(PouchDB, name) {
    return inTurn(function () {
      const cache = cacheOf(PouchDB);
      if (!cache.has(name)) {
        cache.set(name, new PouchDB(name));
      }
      return cache.get(name);
    });
  }

  function deleteDB(PouchDB, name, opts) {
    return inTurn(function () {
      const cache = cacheOf(PouchDB);
      const db = cache.get(name);
      if (!db) {   // not open, perhaps on disk
        return PouchDB.destroy(name, opts);
      }
      return db.destroy(opts).then(function (result) {
        cache.delete(name);
        return result;
      });
    });
  }

  return { getOrCreateDB: getOrCreateDB, deleteDB: deleteDB };
}

module.exports = { closedToAnonymous: closedToAnonymous, databaseCache: databaseCache };

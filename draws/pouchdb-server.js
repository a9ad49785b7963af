// Starts PouchDB Server (node_modules/pouchdb-server) with six fixes, and
// a request counter for `make bench`.
//
// 1. PouchDB Server 4.2.0 never ends a continuous _changes feed whose
//    client hung up: the feed goes on reading every later change for
//    nobody, so each actor that ever stopped or died makes each write
//    dearer, for good. CouchDB ends such a feed, and PouchDB Server's own
//    long polls are ended the same way; here its continuous feeds are too.
// 2. To build the session of every request, it asks the _users database
//    for its name with info(), which also measures that database's files
//    on disk (an lstat of each): a tenth of the server's time on a GET.
//    Here databases do not report their size on disk (nothing in DRAWS
//    reads it; CouchDB's "sizes" are simply absent).
// 3. Mango selectors are answered as CouchDB 3.3 answers them: $or, $and,
//    $nor or $not under a field, as the original mockup's AQUA Batch Helper
//    sends them (PouchDB Server answered 400 "unknown operator"), negations
//    and $ne hold only where the field exists, and $ne or $regex under a
//    top-level $or works: see pouchdb-selectors.js.
// 4. With an admin configured, every request without valid credentials
//    but `GET /` gets 401 (PouchDB Server answered _find, _bulk_get,
//    _all_dbs, _utils ... to anyone), and a refused request can no longer
//    wedge the server: see pouchdb-security.js.
// 5. Each document of a _bulk_docs is validated on its own, and each
//    validation reads the database's design documents (allDocs with
//    include_docs, for their validate_doc_update): a bulk of 1,000
//    documents read the same few design documents 1,000 times, a third of
//    the server's time in a write. Here the reads of them in flight at one
//    moment share one answer (a bulk's are all started at once), so a bulk
//    reads them once; the next bulk reads them afresh.
// 6. A Mango query fetches the documents its index found with
//    allDocs({keys}), which reads each key as a range of its own (an
//    iterator opened and closed per document): 0.4 ms of the server's time
//    per document, four times a sequential read, so a query through an index
//    finding most of a table cost more than reading the table whole. Here
//    such a fetch gets each document by its id instead; if any of them is
//    not simply there (deleted, missing, an error), the fetch is left to
//    allDocs as before.
//
// Everything else is the unchanged server, with the unchanged command line:
//
//   node draws/pouchdb-server.js [pouchdb-server options]
//
// With DRAWS_REQUEST_COUNT_FILE set, the number of HTTP requests served so
// far is written to that file (at most once a second), which `make bench`
// reads: the server's own log would cost a fifth of a write to say as much.
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");

const root = path.join(__dirname, "..", "node_modules");
const serverDir = path.dirname(require.resolve("pouchdb-server/package.json", { paths: [root] }));
const expressPouchDBFile = require.resolve("express-pouchdb", { paths: [serverDir] });
const expressPouchDBDir = path.dirname(path.dirname(expressPouchDBFile));
const lib = path.join(expressPouchDBDir, "lib");
const security = require("./pouchdb-security.js");
const selectors = require("./pouchdb-selectors.js");
const selectorCore = require(require.resolve("pouchdb-selector-core", {
  paths: [path.dirname(require.resolve("pouchdb-find", { paths: [expressPouchDBDir] }))],
}));

// Before any module of express-pouchdb takes these functions from it.
Object.assign(require(path.join(lib, "create-or-delete-dbs.js")), security.databaseCache());
const utils = require(path.join(lib, "utils.js"));

// Has express-pouchdb's module FILE (in lib/) export CHANGE(its exports).
function patchModule(file, change) {
  const fullPath = path.join(lib, file);
  const original = require(fullPath);
  require.cache[fullPath].exports = change(original);
}

// Ends the feeds a _changes request opened once its connection closes.
function endFeedsOnHangUp(handler) {
  return function (req, res, next) {
    const db = req.db;
    if (db && typeof db.changes === "function") {
      const feeds = [];
      req.db = Object.create(db);
      req.db.changes = function () {
        const feed = db.changes.apply(db, arguments);
        feeds.push(feed);
        return feed;
      };
      res.on("close", function () {
        feeds.forEach(function (feed) {
          if (typeof feed.cancel === "function") {
            feed.cancel();
          }
        });
      });
    }
    return handler(req, res, next);
  };
}

// Has PouchDB read the selector as CouchDB does.
function selectorAsOnCouchDB(handler) {
  return function (req, res, next) {
    if (req.body && req.body.selector) {
      try {
        req.body.selector = selectors.asOnCouchDB(req.body.selector);
      } catch (err) {
        return utils.sendError(res, err, 400);
      }
    }
    return handler(req, res, next);
  };
}

// Has the routes file FILE of express-pouchdb register its GET and POST
// routes with their last handler wrapped by WRAP(handler, route).
function wrapRoutes(file, wrap) {
  patchModule(path.join("routes", file), function (addRoutes) {
    return function (app) {
      const routes = Object.create(app);
      ["get", "post"].forEach(function (verb) {
        routes[verb] = function (route) {
          const handlers = Array.prototype.slice.call(arguments, 1);
          return app[verb].apply(app, [route].concat(handlers.map(function (h, i) {
            return i === handlers.length - 1 ? wrap(h, route) : h;
          })));
        };
      });
      return addRoutes(routes);
    };
  });
}

// The design documents' read that pouchdb-validation makes for each document validated.
function isDesignRead(opts) {
  return Object.keys(opts).length === 3 &&
    opts.startkey === "_design/" && opts.endkey === "_design0" && opts.include_docs === true;
}

// The documents' fetch that pouchdb-find makes through pouchdb-abstract-mapreduce:
// these five options, conflicts, attachments and binary unset for a Mango query
// (its caller reads only each row's id and doc, not total_rows).
const FETCH_OPTIONS = "attachments,binary,conflicts,include_docs,keys";

function isFetchByKeys(opts) {
  return Object.keys(opts).sort().join() === FETCH_OPTIONS && Array.isArray(opts.keys) &&
    opts.include_docs === true && !opts.conflicts && !opts.attachments && !opts.binary;
}

function fetchByGet(db, allDocs, opts) {
  return Promise.all(opts.keys.map(function (id) {
    return db.get(id).then(function (doc) {
      return { id: id, key: id, value: { rev: doc._rev }, doc: doc };
    });
  })).then(function (rows) {
    return { total_rows: rows.length, offset: 0, rows: rows };
  }, function () {
    return allDocs.call(db, opts);
  });
}

// Fixes 5 and 6, on each database express-pouchdb opens.
function cheaperReads(db) {
  const allDocs = db.allDocs;
  let designRead = null;
  db.allDocs = function (opts, callback) {
    if (typeof callback === "function" || !opts || typeof opts !== "object") {
      return allDocs.apply(this, arguments);
    }
    if (isFetchByKeys(opts)) {
      return fetchByGet(this, allDocs, opts);
    }
    if (!isDesignRead(opts)) {
      return allDocs.apply(this, arguments);
    }
    if (!designRead) {
      const done = function () {
        designRead = null;
      };
      designRead = allDocs.call(this, opts);
      designRead.then(done, done);
    }
    return designRead;
  };
}

patchModule("validation.js", function (enableValidation) {
  return function (app) {
    enableValidation(app);
    app.dbWrapper.registerWrapper(function (name, db, next) {
      cheaperReads(db);
      next();
    });
  };
});

const makeApp = require(expressPouchDBFile);
require.cache[expressPouchDBFile].exports = function (startPouchDB, opts) {
  if (startPouchDB && !startPouchDB.defaults) {   // called with the options only
    opts = startPouchDB;
    startPouchDB = null;
  }
  opts = Object.assign({}, opts);
  opts.overrideMode = Object.assign({ include: [], exclude: [] }, opts.overrideMode);
  opts.overrideMode.exclude = opts.overrideMode.exclude.concat(["disk-size"]);
  return startPouchDB ? makeApp(startPouchDB, opts) : makeApp(opts);
};

const massageSelector = selectorCore.massageSelector;
selectorCore.massageSelector = function (selector) {
  return selectors.listNestedOperands(massageSelector(selector), false);
};

// Right after the middleware that finds who is asking.
patchModule(path.join("routes", "authentication.js"), function (addAuthentication) {
  return function (app) {
    addAuthentication(app);
    app.use(security.closedToAnonymous(app));
  };
});
wrapRoutes("changes.js", endFeedsOnHangUp);
wrapRoutes("find.js", function (handler, route) {
  return /\/_(find|explain)$/.test(route) ? selectorAsOnCouchDB(handler) : handler;
});

const countFile = process.env.DRAWS_REQUEST_COUNT_FILE;
if (countFile) {
  let served = 0;
  let written = -1;
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (event) {
    if (event === "request") {
      served += 1;
    }
    return emit.apply(this, arguments);
  };
  setInterval(function () {
    if (served !== written) {
      written = served;
      fs.writeFileSync(countFile, String(served));
    }
  }, 1000).unref();
}

process.argv.splice(1, 1, path.join(serverDir, "bin", "pouchdb-server"));
require(path.join(serverDir, "lib", "index.js"));

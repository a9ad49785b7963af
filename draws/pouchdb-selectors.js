// Mango selectors in PouchDB Server answered as Apache CouchDB 3.3 answers them.
//
// 1. Field-level $or, $and, $nor and $not. Apache CouchDB accepts a
//    combination operator under a field, as the original mockup's AQUA Batch
//    Helper sends it:
//      {"state": "ReadyForProcessing", "substate": {"$or": [{"$eq": null}, {"$eq": ""}]}}
//    PouchDB Server 4.2.0 answers 400 `unknown operator "$or"`: it knows these
//    operators only at the level of a selector. `asOnCouchDB` rewrites a
//    selector into the same condition with each of them lifted to that level:
//      {"state": "ReadyForProcessing", "$or": [{"substate": {"$eq": null}}, {"substate": {"$eq": ""}}]}
// 2. Negations. CouchDB pushes $not and $nor down to the fields they negate
//    ({"$not": {"f": {"$eq": 1}}} is {"f": {"$ne": 1}}), and a condition on a
//    field a document lacks never holds (but {"$exists": false}): so a
//    negated condition, and $ne, hold only where the field exists. PouchDB
//    negates the whole clause, and its $ne holds where the field is missing.
// 3. $in and $nin treat a null value as a value in CouchDB; PouchDB's never
//    hold on null.
// A selector that needs none of this is returned unchanged.
//
// PouchDB evaluates nested $or/$nor/$not faithfully, but it "merges" the
// clauses of an $and with shortcuts that are not always equivalent and it
// ignores a bare value (an implicit $eq) below the first level; so the
// rewritten form uses no $and (two clauses that cannot share one object are
// joined as "neither is false", a $nor of $nors) and spells out every $eq.
//
// `listNestedOperands` mends PouchDB's own normalisation of selectors: it
// puts the operands of $ne and $regex in lists, as its matchers expect, at
// the first level only, so `{"$or": [{"f": {"$regex": "^P"}}]}` failed with
// "userValue.every is not a function".
"use strict";

const COMBINATIONS = ["$or", "$and", "$nor", "$not"];

// What CouchDB answers to an $or/$and/$nor whose argument is not a list.
function needsList(operator) {
  const err = new Error(operator + " needs a list of selectors");
  err.status = 400;
  err.name = "bad_request";
  return err;
}

function list(operator, value) {
  if (!Array.isArray(value)) {
    throw needsList(operator);
  }
  return value;
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// True when a combination operator sits under a field anywhere in SELECTOR.
function hasFieldCombination(selector, underField) {
  if (Array.isArray(selector)) {
    return selector.some(function (item) { return hasFieldCombination(item, underField); });
  }
  if (!isObject(selector)) {
    return false;
  }
  return Object.keys(selector).some(function (key) {
    if (COMBINATIONS.indexOf(key) >= 0) {
      return underField || hasFieldCombination(selector[key], false);
    }
    if (key.charAt(0) === "$") {   // an operator's argument ($elemMatch ...) is left alone
      return false;
    }
    return hasFieldCombination(selector[key], true);
  });
}

// True when one of the operators OPERATORS is a key anywhere in VALUE.
function mentions(value, operators) {
  if (Array.isArray(value)) {
    return value.some(function (item) { return mentions(item, operators); });
  }
  return isObject(value) && Object.keys(value).some(function (key) {
    return operators.indexOf(key) >= 0 || mentions(value[key], operators);
  });
}

// {KEY: VALUE}
function one(key, value) {
  const object = {};
  object[key] = value;
  return object;
}

// The clause that gives OPERATOR (with VALUE) on PATH the meaning it has in
// CouchDB, or null where PouchDB's own has it.
function couchDBOperator(path, operator, value) {
  if (operator === "$ne") {
    return one(path, { $ne: value, $exists: true });
  }
  const nullListed = Array.isArray(value) && value.indexOf(null) >= 0;
  if ((operator === "$in" && nullListed) || (operator === "$nin" && Array.isArray(value) && !nullListed)) {
    return { $or: [one(path, one(operator, value)), one(path, { $type: "null" })] };
  }
  return null;
}

// The clauses, all of which must hold, that put the operators OPERATORS on
// the field PATH. NEGATED: they stand under an odd number of $not and $nor,
// and each (but $exists) is made to hold where the field is missing, so that
// its negation holds only where the field exists, as in CouchDB.
function operatorClauses(path, operators, negated) {
  const plain = {};
  const clauses = [];
  Object.keys(operators).forEach(function (operator) {
    const value = operators[operator];
    let clause = couchDBOperator(path, operator, value);
    if (negated && operator !== "$exists") {
      clause = { $or: [clause || one(path, one(operator, value)), one(path, { $exists: false })] };
    }
    if (clause) {
      clauses.push(clause);
    } else {
      plain[operator] = value;
    }
  });
  if (Object.keys(plain).length > 0) {
    clauses.unshift(one(path, plain));
  }
  return clauses;
}

// The clauses, all of which must hold, that put CONDITION on the field PATH.
function fieldClauses(path, condition, negated) {
  if (!isObject(condition) || Object.keys(condition).length === 0) {
    return operatorClauses(path, { $eq: condition }, negated);
  }
  const clauses = [];
  const operators = {};
  Object.keys(condition).forEach(function (key) {
    const value = condition[key];
    if (key === "$or" || key === "$nor") {
      const inner = key === "$nor" ? !negated : negated;
      clauses.push(one(key, list(key, value).map(function (c) { return allOf(fieldClauses(path, c, inner)); })));
    } else if (key === "$and") {
      list(key, value).forEach(function (c) { clauses.push.apply(clauses, fieldClauses(path, c, negated)); });
    } else if (key === "$not") {
      clauses.push({ $not: allOf(fieldClauses(path, value, !negated)) });
    } else if (key.charAt(0) === "$") {
      operators[key] = value;
    } else {   // a sub-field: {"a": {"b": ...}} is "a.b"
      const sub = path + "." + key.replace(/([.$])/g, "\\$1");
      clauses.push.apply(clauses, fieldClauses(sub, value, negated));
    }
  });
  if (Object.keys(operators).length > 0) {
    clauses.unshift.apply(clauses, operatorClauses(path, operators, negated));
  }
  return clauses;
}

// One selector that holds when every one of CLAUSES holds.
function allOf(clauses) {
  const merged = {};
  const clash = clauses.some(function (clause) {
    return Object.keys(clause).some(function (key) {
      if (key in merged) {
        return true;
      }
      merged[key] = clause[key];
      return false;
    });
  });
  if (!clash) {
    return merged;
  }
  return { $nor: clauses.map(function (clause) { return { $nor: [clause] }; }) };
}

function lift(selector, negated) {
  if (!isObject(selector)) {
    return selector;
  }
  const clauses = [];
  Object.keys(selector).forEach(function (key) {
    const value = selector[key];
    if (key === "$or" || key === "$nor") {
      const inner = key === "$nor" ? !negated : negated;
      clauses.push(one(key, list(key, value).map(function (s) { return lift(s, inner); })));
    } else if (key === "$and") {
      list(key, value).forEach(function (s) { clauses.push(lift(s, negated)); });
    } else if (key === "$not") {
      clauses.push({ $not: lift(value, !negated) });
    } else if (key.charAt(0) === "$") {
      clauses.push(one(key, value));
    } else {
      clauses.push.apply(clauses, fieldClauses(key, value, negated));
    }
  });
  return allOf(clauses);
}

// After PouchDB's massageSelector: below the first level, the operands of
// $ne and $regex in lists too (an operand already in one was made by it).
function listNestedOperands(selector, nested) {
  Object.keys(selector).forEach(function (key) {
    const value = selector[key];
    if ((key === "$or" || key === "$nor") && Array.isArray(value)) {
      value.forEach(function (s) { listNestedOperands(s, true); });
    } else if (key === "$not") {
      listNestedOperands(value, true);
    } else if (nested && isObject(value)) {
      ["$ne", "$regex"].forEach(function (op) {
        if (op in value && !Array.isArray(value[op])) {
          value[op] = [value[op]];
        }
      });
    }
  });
  return selector;
}

// SELECTOR as PouchDB must read it to answer as CouchDB (see the top).
function asOnCouchDB(selector) {
  const needed = hasFieldCombination(selector, false) ||
    mentions(selector, ["$not", "$nor", "$ne", "$in", "$nin"]);
  return needed ? lift(selector, false) : selector;
}

module.exports = { asOnCouchDB: asOnCouchDB, listNestedOperands: listNestedOperands };

// Field-level $or, $and, $nor and $not in Mango selectors, for PouchDB Server.
//
// Apache CouchDB accepts a combination operator under a field, as the
// original mockup's AQUA Batch Helper sends it:
//   {"state": "ReadyForProcessing", "substate": {"$or": [{"$eq": null}, {"$eq": ""}]}}
// PouchDB Server 4.2.0 answers 400 `unknown operator "$or"`: it knows these
// operators only at the level of a selector. `liftCombinations` rewrites a
// selector into the same condition with each of them lifted to that level:
//   {"state": "ReadyForProcessing", "$or": [{"substate": {"$eq": null}}, {"substate": {"$eq": ""}}]}
// A selector without one is returned unchanged.
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

// The clauses, all of which must hold, that put CONDITION on the field PATH.
function fieldClauses(path, condition) {
  const field = {};
  if (!isObject(condition) || Object.keys(condition).length === 0) {
    field[path] = { $eq: condition };
    return [field];
  }
  const clauses = [];
  const operators = {};
  Object.keys(condition).forEach(function (key) {
    const value = condition[key];
    if (key === "$or" || key === "$nor") {
      const clause = {};
      clause[key] = list(key, value).map(function (c) { return allOf(fieldClauses(path, c)); });
      clauses.push(clause);
    } else if (key === "$and") {
      list(key, value).forEach(function (c) { clauses.push.apply(clauses, fieldClauses(path, c)); });
    } else if (key === "$not") {
      clauses.push({ $not: allOf(fieldClauses(path, value)) });
    } else if (key.charAt(0) === "$") {
      operators[key] = value;
    } else {   // a sub-field: {"a": {"b": ...}} is "a.b"
      const sub = path + "." + key.replace(/([.$])/g, "\\$1");
      clauses.push.apply(clauses, fieldClauses(sub, value));
    }
  });
  if (Object.keys(operators).length > 0) {
    field[path] = operators;
    clauses.unshift(field);
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

function lift(selector) {
  if (!isObject(selector)) {
    return selector;
  }
  const clauses = [];
  Object.keys(selector).forEach(function (key) {
    const value = selector[key];
    if (key === "$or" || key === "$nor") {
      const clause = {};
      clause[key] = list(key, value).map(lift);
      clauses.push(clause);
    } else if (key === "$and") {
      list(key, value).forEach(function (s) { clauses.push(lift(s)); });
    } else if (key === "$not") {
      clauses.push({ $not: lift(value) });
    } else if (key.charAt(0) === "$") {
      const clause = {};
      clause[key] = value;
      clauses.push(clause);
    } else {
      clauses.push.apply(clauses, fieldClauses(key, value));
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

function liftCombinations(selector) {
  return hasFieldCombination(selector, false) ? lift(selector) : selector;
}

module.exports = { liftCombinations: liftCombinations, listNestedOperands: listNestedOperands };

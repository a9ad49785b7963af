// Live updates: the server pushes which tables changed (server-sent events,
// fed by CouchDB's changes feeds); we re-read this page and swap in the
// sections that differ. The markup comes from the server's autoescaping
// templates, parsed inertly by DOMParser: no data ever goes through innerHTML.
"use strict";
(function () {
  const watched = new Set((document.body.dataset.tables || "").split(" ").filter(Boolean));
  const live = document.getElementById("live");
  const banner = document.getElementById("banner");
  let busy = false, again = false, lost = false;

  function show(on, text) {
    live.className = "live " + (on ? "on" : "off");
    live.textContent = text;
  }

  function swap(fresh) {
    const parts = Array.from(fresh.querySelectorAll("main [data-live]"));
    const current = document.querySelectorAll("main [data-live]");
    if (parts.length !== current.length || parts.some(el => !document.getElementById(el.id))) {
      // The page's shape changed (e.g. CouchDB came back): take the whole of it.
      document.getElementById("main").replaceWith(document.adoptNode(fresh.getElementById("main")));
    } else {
      for (const el of parts) {
        const old = document.getElementById(el.id);
        if (old.outerHTML !== el.outerHTML) old.replaceWith(document.adoptNode(el));
      }
    }
    document.title = fresh.title;
    banner.hidden = true;
  }

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        const resp = await fetch(location.href, {cache: "no-store", headers: {"Accept": "text/html"}});
        const fresh = new DOMParser().parseFromString(await resp.text(), "text/html");
        if (resp.status === 503 && !document.getElementById("couch-down")) {
          banner.hidden = false;  // keep what we show; say it may be stale
        } else {
          swap(fresh);
        }
      } while (again);
    } catch (err) {
      show(false, "dashboard unreachable");
    } finally {
      busy = false;
    }
  }

  const events = new EventSource("/events");
  events.addEventListener("change", ev => {
    const changed = JSON.parse(ev.data).tables || [];
    if (changed.some(t => watched.has(t))) refresh();
  });
  events.addEventListener("couch", ev => {
    const health = JSON.parse(ev.data);
    if (health.up) {
      show(true, "live");
      if (lost || !banner.hidden || document.getElementById("couch-down")) refresh();
      lost = false;
    } else {
      show(false, "CouchDB unreachable");
      if (!document.getElementById("couch-down")) banner.hidden = false;
    }
  });
  events.addEventListener("error", () => { lost = true; show(false, "reconnecting…"); });
})();

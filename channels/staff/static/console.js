// patientbot staff console: live updates (server-sent events), waiting-time timers and the
// idle logoff. No inline script anywhere (the CSP forbids it); text is inserted with
// textContent only, never as HTML.
(function () {
  "use strict";
  var body = document.body;
  var page = body.dataset.page;
  if (page === "login") { return; }

  // Idle logoff in the browser too (the server enforces it regardless).
  var idle = parseInt(body.dataset.idleSeconds || "900", 10);
  setTimeout(function () { window.location.assign("/staff/login?reason=idle"); }, (idle + 5) * 1000);

  var live = document.getElementById("live-status");
  function say(text) { if (live) { live.textContent = text; } }

  function minutes(seconds) { return Math.floor(seconds / 60) + " min"; }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // -- the queue ------------------------------------------------------------------------------
  var sla = parseInt(body.dataset.slaSeconds || "600", 10);
  function renderQueue(rows) {
    var tbody = document.querySelector("#queue tbody");
    if (!tbody) { return; }
    tbody.textContent = "";
    if (!rows.length) {
      var empty = el("tr", "empty");
      var td = el("td", "", "No conversation is waiting for staff.");
      td.colSpan = 7;
      empty.appendChild(td);
      tbody.appendChild(empty);
      return;
    }
    rows.forEach(function (row) {
      var tr = el("tr", "prio-" + row.priority);
      tr.dataset.conversation = row.conversation;
      tr.dataset.since = row.since;
      tr.dataset.status = row.status;
      tr.appendChild(el("td", "", row.priority));
      tr.appendChild(el("td", "", row.reason_label));
      tr.appendChild(el("td", "channel", row.channel_label));
      var link = el("a", "", row.conversation.slice(0, 16) + "…");
      link.href = "/staff/conversations/" + encodeURIComponent(row.conversation);
      var cell = el("td");
      cell.appendChild(link);
      tr.appendChild(cell);
      tr.appendChild(el("td", "waiting", minutes(row.waiting_seconds)));
      tr.appendChild(el("td", "", row.status));
      tr.appendChild(el("td", "", (row.owner || "—") + (row.mine ? " (you)" : "")));
      tbody.appendChild(tr);
    });
    tickTimers();
  }

  function tickTimers() {
    var now = Date.now();
    document.querySelectorAll("#queue tbody tr[data-since]").forEach(function (tr) {
      var since = Date.parse(tr.dataset.since);
      if (isNaN(since)) { return; }
      var waited = Math.max(0, Math.floor((now - since) / 1000));
      var over = tr.dataset.status === "waiting" && waited > sla;
      var cell = tr.querySelector(".waiting");
      cell.textContent = minutes(waited);
      if (over) { cell.appendChild(document.createTextNode(" ")); cell.appendChild(el("span", "badge over", "over SLA")); }
      tr.classList.toggle("over-sla", over);
    });
  }

  function refreshQueue() {
    return fetch("/staff/api/queue", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { if (r.status === 401) { signedOut(); return null; } return r.json(); })
      .then(function (doc) { if (doc) { renderQueue(doc.rows); } });
  }

  // -- one conversation -------------------------------------------------------------------------
  var conversation = body.dataset.conversation;
  var lastId = body.dataset.lastId || "";
  var fetching = false;
  function refreshLog() {
    if (fetching) { return; }
    fetching = true;
    var url = "/staff/api/conversations/" + encodeURIComponent(conversation) + "/log" +
      (lastId ? "?after=" + encodeURIComponent(lastId) : "");
    fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { if (r.status === 401) { signedOut(); return null; } return r.json(); })
      .then(function (doc) {
        if (!doc) { return; }
        var list = document.getElementById("log");
        doc.items.forEach(function (m) {
          if (list.querySelector('[data-id="' + m.id + '"]')) { return; }
          var li = el("li", "msg " + m.kind);
          li.dataset.id = m.id;
          li.appendChild(el("span", "meta", m.who + (m.kind === "note" ? " · internal note" : "") + " · " + m.when));
          li.appendChild(el("span", "text", m.text));
          list.appendChild(li);
          lastId = m.id;
        });
        if (doc.status === "resolved") {
          var status = document.getElementById("status");
          if (status) { status.textContent = "resolved: the bot answers this conversation again"; }
        }
      })
      .finally(function () { fetching = false; });
  }

  function signedOut() { window.location.assign("/staff/login?reason=idle"); }

  // -- the Model page: a running job's progress, polled without counting as activity -------------
  if (page === "model" && body.dataset.jobRunning === "1") {
    var pollJob = setInterval(function () {
      fetch("/staff/api/model/job", {credentials: "same-origin", cache: "no-store"})
        .then(function (r) { if (r.status === 401) { signedOut(); return null; } return r.json(); })
        .then(function (job) {
          if (!job) { return; }
          if (!job.running) { clearInterval(pollJob); window.location.reload(); return; }
          var set = function (id, text) { var node = document.getElementById(id); if (node) { node.textContent = text; } };
          set("job-stage", job.label);
          set("job-elapsed", Math.floor(job.elapsed_seconds / 60) + " min " + (job.elapsed_seconds % 60) + " s");
          set("job-progress", job.progress || "\u2014");
        });
    }, 3000);
  }

  // -- the event stream ---------------------------------------------------------------------------
  if (!window.EventSource) { say("Live updates are not supported by this browser: reload to see changes."); return; }
  var source = new EventSource("/staff/events");
  source.addEventListener("ready", function () { say("Live: updates appear by themselves."); });
  source.addEventListener("queue", function (e) {
    if (page === "queue") { refreshQueue(); }
    if (page === "conversation" && JSON.parse(e.data).conversation === conversation) { refreshLog(); }
  });
  source.addEventListener("message", function (e) {
    if (page === "conversation" && JSON.parse(e.data).conversation === conversation) { refreshLog(); }
  });
  source.addEventListener("signed_out", function () { source.close(); signedOut(); });
  source.onerror = function () { say("Live updates interrupted; reconnecting…"); };

  if (page === "queue") { tickTimers(); setInterval(tickTimers, 1000); }
})();

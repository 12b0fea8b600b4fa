// Live campaign progress on a campaign's admin page: follows the
// campaign's event stream (/api/v1/campaigns/ID/events, server-sent
// events) and writes each reading into the elements marked data-field
// inside #progress. When the state changes (finished, paused by the
// relay watchdog...), the page is loaded again so its actions match.
// Without this script the page shows the figures as they were at load.
(function () {
  "use strict";
  var root = document.querySelector("[data-progress-url]");
  if (!root || !window.EventSource) { return; }
  var initial = root.getAttribute("data-state");
  var fmt = function (n) { return Number(n).toLocaleString("en"); };
  var set = function (name, text) {
    var el = root.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = text; }
  };
  var source = new EventSource(root.getAttribute("data-progress-url"));
  source.addEventListener("progress", function (e) {
    var p = JSON.parse(e.data);
    var c = p.counts;
    set("sent", fmt(c.sent));
    set("failed", fmt(c.failed));
    set("retry", fmt(c.retry));
    set("pending", fmt(c.pending + c.sending));
    set("skipped", fmt(c.skipped));
    set("done", fmt(p.done));
    set("total", fmt(c.total));
    set("percent", p.percent + "%");
    set("state", p.state);
    set("rate", p.rate_per_minute === null ? "—" : fmt(p.rate_per_minute) + " per minute");
    var bar = document.getElementById("progress-bar");
    if (bar) { bar.max = Math.max(c.total, 1); bar.value = p.done; bar.textContent = p.percent + "%"; }
    var waiting = root.querySelector('[data-field="waiting"]');
    if (waiting) { waiting.hidden = p.waiting_since_ms === null; }
    root.setAttribute("data-live-state", p.state);
    if (p.over) { source.close(); }
    if (p.state !== initial) { source.close(); window.location.reload(); }
  });
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) { root.setAttribute("data-live-state", "closed"); }
  };
})();

// Live progress on the admin's pages, from server-sent events.
// - A campaign's page ([data-progress-url]): follows the campaign's event
//   stream (/api/v1/campaigns/ID/events) and writes each reading into the
//   [data-field] elements inside it.
// - An import's page ([data-job-url]): follows the job's event stream
//   (/api/v1/jobs/ID/events) and moves its progress bar.
// When the state changes (finished, paused by the relay watchdog, the
// import done...), the page is loaded again so that what it offers
// matches. Without this script the pages show the figures as at load.
(function () {
  "use strict";
  var fmt = function (n) { return Number(n).toLocaleString("en"); };

  function follow(root, url, event, update) {
    var initial = root.getAttribute("data-state");
    var source = new EventSource(url);
    source.addEventListener(event, function (e) {
      var data = JSON.parse(e.data);
      var state = update(data);
      root.setAttribute("data-live-state", state);
      if (state !== initial) { source.close(); window.location.reload(); }
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { root.setAttribute("data-live-state", "closed"); }
    };
  }

  var campaign = document.querySelector("[data-progress-url]");
  if (campaign && window.EventSource) {
    var set = function (name, text) {
      var el = campaign.querySelector('[data-field="' + name + '"]');
      if (el) { el.textContent = text; }
    };
    follow(campaign, campaign.getAttribute("data-progress-url"), "progress", function (p) {
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
      var waiting = campaign.querySelector('[data-field="waiting"]');
      if (waiting) { waiting.hidden = p.waiting_since_ms === null; }
      return p.state;
    });
  }

  var job = document.querySelector("[data-job-url]");
  if (job && window.EventSource) {
    follow(job, job.getAttribute("data-job-url"), "job", function (j) {
      var total = j.progress_total || 0;
      var percent = total > 0 ? Math.floor(j.progress_done * 100 / total) : 0;
      var bar = document.getElementById("job-bar");
      if (bar) { bar.max = Math.max(total, 1); bar.value = j.progress_done; bar.textContent = percent + "%"; }
      var text = job.querySelector('[data-field="job-percent"]');
      if (text) { text.textContent = percent + "%"; }
      return j.state;
    });
  }
})();

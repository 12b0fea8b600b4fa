// The dashboard's charts: each element with data-chart-for="ID" gets a
// uPlot chart of the table #ID, so the chart and the table (its
// accessible alternative) show the same numbers. The table's rows carry
// the bucket's start in Unix seconds (data-t); the header cells with
// data-series name the series, and each row's cell in that column carries
// its value (data-v). data-chart on the table is "line" or "bars".
// Times are shown in the zone the server speaks (data-zone).
(function () {
  "use strict";
  var colours = ["#14284b", "#d64933", "#1d7a46", "#8a5a00"];

  function read(table) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var columns = [];
    heads.forEach(function (th, i) {
      if (th.dataset.series) { columns.push({ index: i, label: th.dataset.series }); }
    });
    var xs = [];
    var ys = columns.map(function () { return []; });
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
      if (!tr.dataset.t) { return; }
      xs.push(Number(tr.dataset.t));
      columns.forEach(function (c, k) {
        var cell = tr.cells[c.index];
        ys[k].push(cell && cell.dataset.v !== undefined ? Number(cell.dataset.v) : null);
      });
    });
    return { labels: columns.map(function (c) { return c.label; }), data: [xs].concat(ys) };
  }

  function draw(box) {
    var table = document.getElementById(box.dataset.chartFor);
    if (!table || typeof uPlot === "undefined") { return; }
    var d = read(table);
    if (d.data[0].length === 0) { box.hidden = true; return; }
    var zone = box.dataset.zone || "UTC";
    var bars = table.dataset.chart === "bars";
    var series = [{ label: "Time" }].concat(d.labels.map(function (label, i) {
      var s = { label: label, stroke: colours[i % colours.length], width: 2 };
      if (bars) {
        s.fill = colours[i % colours.length];
        s.paths = uPlot.paths.bars({ size: [0.6, 40], gap: 1 });
        s.points = { show: false };
      }
      return s;
    }));
    var opts = {
      width: Math.max(box.clientWidth, 300),
      height: 260,
      series: series,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), zone); },
      scales: { x: { time: true } },
      axes: [{}, { size: 60 }],
      legend: { live: false }
    };
    var plot = new uPlot(opts, d.data, box);
    var last = box.clientWidth;
    window.addEventListener("resize", function () {
      if (box.clientWidth !== last) {
        last = box.clientWidth;
        plot.setSize({ width: Math.max(last, 300), height: 260 });
      }
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-chart-for]"), draw);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

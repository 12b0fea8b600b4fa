// The issue editor's small helpers (progressive enhancement: the page
// works without them). The Markdown toolbar wraps the selection in a body
// field; the preview's controls reload the preview as soon as they change.
(function () {
  "use strict";

  var WRAP = {
    bold: ["**", "**", "bold text"],
    italic: ["*", "*", "italic text"],
    link: ["[", "](https://)", "link text"]
  };
  var PREFIX = { list: "- ", quote: "> " };

  function format(area, kind) {
    var start = area.selectionStart, end = area.selectionEnd;
    var text = area.value, chosen = text.slice(start, end), out, caret;
    if (WRAP[kind]) {
      var w = WRAP[kind], inner = chosen || w[2];
      out = w[0] + inner + w[1];
      caret = start + w[0].length + inner.length;
    } else {
      var lineStart = text.lastIndexOf("\n", start - 1) + 1;
      start = lineStart;
      chosen = text.slice(start, end) || "";
      out = chosen.split("\n").map(function (l) { return PREFIX[kind] + l; }).join("\n");
      caret = start + out.length;
    }
    area.focus();
    area.setRangeText(out, start, end, "end");
    area.setSelectionRange(caret, caret);
    // Autosave and the preview follow the change.
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function setUp() {
    document.querySelectorAll(".md-toolbar").forEach(function (bar) {
      bar.hidden = false;
      var area = document.getElementById(bar.getAttribute("aria-controls"));
      bar.addEventListener("click", function (e) {
        var b = e.target.closest("button[data-md]");
        if (b && area) { format(area, b.getAttribute("data-md")); }
      });
    });
    var controls = document.getElementById("preview-controls");
    if (controls) {
      controls.addEventListener("change", function (e) {
        if (e.target.name === "contact_q") { return; }
        controls.requestSubmit();
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();

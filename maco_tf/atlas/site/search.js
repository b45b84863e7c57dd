/* MACO atlas index: filter the grid (classes, or the units of a unit atlas) by the words of
   each card's data-search as you type; the grid's data-noun / data-nouns name its items.
   Plain JavaScript, no network access: works from file:// and from any static server. */
(function () {
  "use strict";
  var input = document.getElementById("q");
  var grid = document.getElementById("grid");
  var count = document.getElementById("count");
  var empty = document.getElementById("empty");
  if (!input || !grid || !count) {
    return;
  }
  var items = Array.prototype.slice.call(grid.querySelectorAll("li[data-search]"));

  function normalize(text) {
    return text.toLowerCase().replace(/['\u2019.]/g, "").replace(/[\s_\-]+/g, " ").trim();
  }

  var keys = items.map(function (item) {
    return " " + normalize(item.getAttribute("data-search") || "") + " ";
  });

  function update() {
    var words = normalize(input.value).split(" ").filter(Boolean);
    var shown = 0;
    items.forEach(function (item, i) {
      var match = words.every(function (word) {
        return keys[i].indexOf(word) !== -1;
      });
      item.hidden = !match;
      if (match) {
        shown += 1;
      }
    });
    var noun = " " + (items.length === 1 ? grid.getAttribute("data-noun") || "class"
                                         : grid.getAttribute("data-nouns") || "classes");
    count.textContent = shown + " of " + items.length + noun + " shown";
    if (empty) {
      empty.hidden = shown !== 0;
    }
  }

  var query = new URLSearchParams(window.location.search).get("q");
  if (query) {
    input.value = query;
  }
  input.addEventListener("input", update);
  window.addEventListener("pageshow", update);
  update();
})();

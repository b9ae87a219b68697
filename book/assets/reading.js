// Reading comfort (issue 21): mark every output block that is wider than the article column,
// so that reading.css can say that it scrolls sideways. Run again when the window resizes.
(function () {
  function mark() {
    document.querySelectorAll("div.cell_output pre").forEach(function (pre) {
      var box = pre.closest("div.output") || pre.parentElement;
      box.classList.toggle("scrolls-sideways", pre.scrollWidth > pre.clientWidth + 1);
    });
  }
  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("resize", mark);
})();

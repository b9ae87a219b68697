// The Jupyter widget manager (html-manager 1.0.6) typesets widget labels with the MathJax 2
// call MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); the site loads MathJax 3, which
// has no Hub. This deferred script runs right after MathJax's and maps that call onto
// MathJax 3's typesetPromise.
(function () {
  if (!window.MathJax || window.MathJax.Hub) return;
  window.MathJax.Hub = {
    Queue: function (job) {
      var element = Array.isArray(job) ? job[2] : undefined;
      var mj = window.MathJax;
      var ready = mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
      ready.then(function () {
        if (mj.typesetPromise) return mj.typesetPromise(element ? [element] : undefined);
      });
    },
  };
})();

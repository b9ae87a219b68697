// Loaded between require.js and the widget manager (nb_ipywidgets_js in _config.yml).
// The widget manager finds its icon fonts and code chunks through the AMD module path
// "@jupyter-widgets/html-manager/dist", which would resolve next to each page; point it at
// the copy the site serves itself, in _static/widgets/.
(function () {
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": here + "widgets" } });
})();

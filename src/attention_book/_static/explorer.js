/* Paying Attention: the book's interactive figures, drawn in the browser with no kernel.
 *
 * A figure is a <figure class="pa-explorer"> holding a static picture (for print and for
 * readers without JavaScript) and a <script type="application/json"> with its data: the
 * controls, and one frame (a list of panels and a caption) for every combination of the
 * controls' choices, all computed in Python by the page's own run. This script replaces the
 * picture by the controls and the panels, and redraws the panels whenever a control moves.
 * Hovering or focusing a row, a token or a patch shows what it attends to. Nothing is
 * fetched: the data and this script are inlined in the page.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  // viridis at nine stops, the colormap of the book's static figures
  var VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];

  function colour(t) {
    t = Math.max(0, Math.min(1, isFinite(t) ? t : 0));
    var x = t * (VIRIDIS.length - 1), i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
    var a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return "rgb(" + [0, 1, 2].map(function (c) { return Math.round(a[c] + f * (b[c] - a[c])); })
      .join(",") + ")";
  }

  function el(tag, attrs, parent, svg) {
    var node = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(tag, attrs, parent, content) {
    var node = el(tag, attrs, parent, true);
    node.textContent = content;
    return node;
  }

  function fmt(x) {
    if (!isFinite(x)) return String(x);
    var a = Math.abs(x);
    return a >= 1000 || (a > 0 && a < 0.01) ? String(+x.toPrecision(3)) : String(+x.toFixed(a >= 10 ? 1 : 2));
  }

  // A matrix arrives as {shape: [R, C], scale: s, q: [ints]}: entry = q / s (3 digits kept).
  function matrix(m) {
    var rows = [], r, c;
    for (r = 0; r < m.shape[0]; r++) {
      var row = [];
      for (c = 0; c < m.shape[1]; c++) {
        var q = m.q[r * m.shape[1] + c];
        row.push(q === null ? NaN : q / m.scale);
      }
      rows.push(row);
    }
    return rows;
  }

  function range(values, panel) {
    var flat = [].concat.apply([], values).filter(isFinite);
    var lo = panel.vmin !== null && panel.vmin !== undefined ? panel.vmin : Math.min.apply(null, flat);
    var hi = panel.vmax !== null && panel.vmax !== undefined ? panel.vmax : Math.max.apply(null, flat);
    return [lo, hi > lo ? hi : lo + 1];
  }

  function focusable(node, label, onEnter, onLeave) {
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "button");
    node.setAttribute("aria-label", label);
    node.addEventListener("mouseenter", onEnter);
    node.addEventListener("focus", onEnter);
    node.addEventListener("mouseleave", onLeave);
    node.addEventListener("blur", onLeave);
  }

  // The strongest entries of a row, for the readout: "to 'cat' 0.61, 'the' 0.20, ...".
  function strongest(row, labels) {
    return row.map(function (v, j) { return [isFinite(v) ? v : -Infinity, j]; })
      .sort(function (a, b) { return b[0] - a[0]; }).slice(0, 3)
      .map(function (p) { return "'" + labels[p[1]] + "' " + fmt(p[0]); }).join(", ");
  }

  // Heatmap with row and column labels; a row lights up, with its strongest columns.
  function drawMatrix(box, panel, say) {
    var values = matrix(panel.values), R = values.length, C = values[0].length;
    var cell = Math.max(8, Math.min(28, Math.floor(300 / Math.max(R, C))));
    var left = panel.rows ? 8 + 7 * Math.max.apply(null, panel.rows.map(function (s) { return s.length; })) : 4;
    var top = panel.cols ? 8 + 6 * Math.max.apply(null, panel.cols.map(function (s) { return s.length; })) : 4;
    left = Math.min(left, 110); top = Math.min(top, 90);
    var svg = el("svg", {width: left + C * cell + 4 + (panel.cols ? Math.round(top * 0.5) : 0),
      height: top + R * cell + 4, class: "pa-matrix"}, box, true);
    var lim = range(values, panel), i, j;
    for (j = 0; panel.cols && j < C; j++) {
      text("text", {x: 0, y: 0, "font-size": 10, fill: "currentColor",
        transform: "translate(" + (left + j * cell + cell / 2 + 3) + "," + (top - 4) + ") rotate(-60)"},
        svg, panel.cols[j]);
    }
    var band = el("rect", {x: left - 2, y: 0, width: C * cell + 4, height: cell, fill: "none",
      stroke: "#d55e00", "stroke-width": 2, visibility: "hidden"}, svg, true);
    values.forEach(function (row, r) {
      var g = el("g", {class: "pa-row"}, svg, true);
      row.forEach(function (v, c) {
        var rect = el("rect", {x: left + c * cell, y: top + r * cell, width: cell - 1, height: cell - 1,
          fill: isFinite(v) ? colour((v - lim[0]) / (lim[1] - lim[0])) : "#888"}, g, true);
        text("title", {}, rect, (panel.rows ? panel.rows[r] : r) + " → " + (panel.cols ? panel.cols[c] : c) + ": " + fmt(v));
      });
      if (panel.rows) text("text", {x: left - 4, y: top + r * cell + cell * 0.7, "font-size": 10,
        "text-anchor": "end", fill: "currentColor"}, g, panel.rows[r]);
      var name = panel.rows ? panel.rows[r] : "row " + r;
      focusable(g, name, function () {
        band.setAttribute("y", top + r * cell - 1);
        band.setAttribute("visibility", "visible");
        say(panel.title + ": " + name + " → " + strongest(row, panel.cols || row.map(function (_, k) { return k; })));
      }, function () { band.setAttribute("visibility", "hidden"); });
    });
  }

  // Tokens on the left attend to tokens on the right; the line's opacity is the weight.
  function drawLines(box, panel, say) {
    var values = matrix(panel.values), N = panel.tokens.length, step = 18;
    var width = 8 + 7 * Math.max.apply(null, panel.tokens.map(function (s) { return s.length; }));
    width = Math.min(width, 110);
    var svg = el("svg", {width: 2 * width + 120, height: N * step + 10, class: "pa-lines"}, box, true);
    var lines = el("g", {}, svg, true), all = [];
    values.forEach(function (row, i) {
      row.forEach(function (v, j) {
        if (v < 0.02) return;
        all.push([i, el("line", {x1: width + 6, y1: 10 + i * step, x2: width + 114, y2: 10 + j * step,
          stroke: "#0072b2", "stroke-width": 2, "stroke-opacity": v}, lines, true)]);
      });
    });
    panel.tokens.forEach(function (tok, i) {
      var g = el("g", {class: "pa-token"}, svg, true);
      text("text", {x: width, y: 14 + i * step, "font-size": 11, "text-anchor": "end", fill: "currentColor"}, g, tok);
      text("text", {x: width + 120, y: 14 + i * step, "font-size": 11, fill: "currentColor"}, svg, tok);
      focusable(g, tok, function () {
        all.forEach(function (p) { p[1].setAttribute("visibility", p[0] === i ? "visible" : "hidden"); });
        say(panel.title + ": '" + tok + "' → " + strongest(values[i], panel.tokens));
      }, function () { all.forEach(function (p) { p[1].setAttribute("visibility", "visible"); }); });
    });
  }

  // A grey image cut into patches; a patch shows, over the image, where it looks.
  function drawPatches(box, panel, say) {
    var image = matrix(panel.image), H = image.length, W = image[0].length, g = panel.grid;
    var values = matrix(panel.values), px = Math.floor(220 / Math.max(H, W));
    var svg = el("svg", {width: W * px + 2, height: H * px + 2, class: "pa-patches"}, box, true);
    image.forEach(function (row, r) {
      row.forEach(function (v, c) {
        var s = Math.round(255 * Math.max(0, Math.min(1, v)));
        el("rect", {x: c * px, y: r * px, width: px, height: px, fill: "rgb(" + s + "," + s + "," + s + ")"}, svg, true);
      });
    });
    var ph = H / g[0] * px, pw = W / g[1] * px, over = el("g", {}, svg, true), cells = [];
    for (var p = 0; p < g[0] * g[1]; p++) {
      cells.push(el("rect", {x: (p % g[1]) * pw, y: Math.floor(p / g[1]) * ph, width: pw, height: ph,
        fill: "#e69f00", "fill-opacity": 0}, over, true));
    }
    cells.forEach(function (rect, p) {
      var row = values[p], hi = Math.max.apply(null, row);
      var frame = el("rect", {x: rect.getAttribute("x"), y: rect.getAttribute("y"), width: pw, height: ph,
        fill: "transparent", stroke: "#888", "stroke-width": 0.5}, svg, true);
      focusable(frame, "patch " + p, function () {
        cells.forEach(function (c, q) { c.setAttribute("fill-opacity", 0.85 * row[q] / (hi || 1)); });
        frame.setAttribute("stroke", "#d55e00"); frame.setAttribute("stroke-width", 2);
        say(panel.title + ": patch " + p + " looks most at patches " +
          strongest(row, row.map(function (_, k) { return String(k); })).replace(/'/g, ""));
      }, function () {
        cells.forEach(function (c) { c.setAttribute("fill-opacity", 0); });
        frame.setAttribute("stroke", "#888"); frame.setAttribute("stroke-width", 0.5);
      });
    });
  }

  // Horizontal bars with their values, on a shared or a panel's own scale.
  function drawBars(box, panel) {
    var v = matrix(panel.bars)[0], labels = panel.labels, hi = panel.vmax || Math.max.apply(null, v) || 1;
    var left = Math.min(8 + 7 * Math.max.apply(null, labels.map(function (s) { return s.length; })), 150);
    var svg = el("svg", {width: left + 300, height: v.length * 20 + 6, class: "pa-bars"}, box, true);
    v.forEach(function (x, i) {
      text("text", {x: left - 6, y: 15 + i * 20, "font-size": 11, "text-anchor": "end", fill: "currentColor"}, svg, labels[i]);
      el("rect", {x: left, y: 4 + i * 20, width: Math.max(1, 210 * x / hi), height: 14,
        fill: panel.colours ? panel.colours[i] : "#0072b2"}, svg, true);
      text("text", {x: left + 214 * Math.min(x / hi, 1) + 4, y: 15 + i * 20, "font-size": 11, fill: "currentColor"},
        svg, (panel.text ? panel.text[i] : fmt(x)));
    });
  }

  var DRAW = {matrix: drawMatrix, lines: drawLines, patches: drawPatches, bars: drawBars};

  function start(figure) {
    if (figure.getAttribute("data-pa-ready")) return;
    var source = figure.querySelector("script.pa-data");
    if (!source) return;
    var data = JSON.parse(source.textContent);
    figure.setAttribute("data-pa-ready", "1");
    var still = figure.querySelector(".pa-static");
    if (still) still.style.display = "none";
    var live = el("div", {class: "pa-live"}, figure);
    var controls = el("div", {class: "pa-controls"}, live);
    var panels = el("div", {class: "pa-panels", role: "img", "aria-label": data.alt}, live);
    var caption = el("p", {class: "pa-caption"}, live);
    var readout = el("p", {class: "pa-readout", "aria-live": "polite"}, live);
    var choice = data.controls.map(function (c) { return c.initial || 0; });
    function say(s) { readout.textContent = s; }
    function draw() {
      var frame = data.frames[choice.join(",")];
      panels.textContent = "";
      frame.panels.forEach(function (part, i) {
        var panel = Object.assign({}, data.base[i], part);  // a frame keeps what differs
        Object.keys(panel).forEach(function (k) {  // arrays and labels are stored once
          var v = panel[k];
          if (v && typeof v === "object" && v.$ !== undefined) panel[k] = data.pool[v.$];
        });
        var box = el("div", {class: "pa-panel"}, panels);
        el("div", {class: "pa-title"}, box).textContent = panel.title;
        DRAW[panel.kind](box, panel, say);
      });
      caption.textContent = frame.caption || "";
      say(data.hint);
    }
    data.controls.forEach(function (c, k) {
      var label = el("label", {}, controls), input, shown;
      label.appendChild(document.createTextNode(c.name + " "));
      if (c.kind === "slider") {
        input = el("input", {type: "range", min: 0, max: c.options.length - 1, step: 1, value: choice[k],
          "aria-valuetext": c.options[choice[k]]}, label);
        shown = el("output", {}, label);
        shown.textContent = c.options[choice[k]];
        input.addEventListener("input", function () {
          choice[k] = +input.value;
          shown.textContent = c.options[choice[k]];
          input.setAttribute("aria-valuetext", c.options[choice[k]]);
          draw();
        });
      } else {
        input = el("select", {}, label);
        c.options.forEach(function (o, i) { el("option", {value: i}, input).textContent = o; });
        input.value = String(choice[k]);
        input.addEventListener("change", function () { choice[k] = +input.value; draw(); });
      }
    });
    draw();
  }

  function startAll() {
    Array.prototype.forEach.call(document.querySelectorAll("figure.pa-explorer"), start);
  }
  window.paExplorer = {start: startAll};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();

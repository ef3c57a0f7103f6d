/* lumos explorer: SpRAy embeddings, clusters and heatmaps of a store. No dependencies.
   Data comes from the local JSON API (lumos serve) or, in a static page (lumos spray --html),
   from window.LUMOS_STATIC, with every thumbnail embedded as a data: URI. */
(function () {
  "use strict";
  var STATIC = window.LUMOS_STATIC || null;
  var MAX_SHOWN = 48;
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
  var $ = function (id) { return document.getElementById(id); };

  var source = STATIC ? {
    index: function () { return Promise.resolve(STATIC.index); },
    klass: function (m, c) { return Promise.resolve(STATIC.classes[m + "/" + c]); },
    image: function (kind, m, i) {
      return STATIC.images[kind === "input" ? "input/" + i : kind + "/" + m + "/" + i] || "";
    },
    prototype: function (m, c, k, j) { return STATIC.prototypes[[m, c, k, j].join("/")] || ""; }
  } : {
    index: function () { return getJSON("api/index"); },
    klass: function (m, c) {
      return getJSON("api/class/" + encodeURIComponent(m) + "/" + encodeURIComponent(c));
    },
    image: function (kind, m, i) {
      return kind === "input" ? "api/image/input/" + i + ".png"
        : "api/image/" + kind + "/" + encodeURIComponent(m) + "/" + i + ".png";
    },
    prototype: function (m, c, k, j) {
      return "api/prototype/" + [m, c, k, j].map(encodeURIComponent).join("/") + ".png";
    }
  };

  function getJSON(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  var state = {index: null, data: null, k: null, selected: [], tool: "pan",
               view: {s: 1, tx: 0, ty: 0}, drag: null};

  function option(select, value, text) {
    var o = document.createElement("option");
    o.value = value; o.textContent = text; select.appendChild(o);
  }

  function fill(select, items, keep) {
    var old = keep ? select.value : null;
    select.innerHTML = "";
    items.forEach(function (it) { option(select, it[0], it[1]); });
    if (old !== null && items.some(function (it) { return String(it[0]) === old; })) {
      select.value = old;
    }
  }

  function start() {
    bindControls();
    source.index().then(function (index) {
      state.index = index;
      $("where").textContent = index.directory;
      $("to-concepts").hidden = STATIC !== null || !(index.concepts || []).length;
      fill($("method"), index.methods.filter(function (m) { return index.analysed[m]; })
        .map(function (m) { return [m, m]; }));
      var wanted = /(?:^#|&)method=([^&]+)/.exec(location.hash);  /* e.g. #method=ig */
      if (wanted && index.analysed[decodeURIComponent(wanted[1])]) {
        $("method").value = decodeURIComponent(wanted[1]);
      }
      methodChanged();
    }).catch(fail);
  }

  function fail(err) {
    $("grid").innerHTML = "";
    var p = document.createElement("p");
    p.className = "note"; p.textContent = String(err);
    $("grid").appendChild(p);
  }

  function methodChanged() {
    var m = $("method").value, index = state.index;
    fill($("method-b"), [["", "(none)"]].concat(index.methods.filter(function (o) {
      return o !== m;
    }).map(function (o) { return [o, o]; })), true);
    if (!$("method-b").value && $("method-b").options.length > 1) {
      $("method-b").selectedIndex = 1;
    }
    fill($("class"), index.analysed[m].map(function (c) {
      return [c.key, c.name + " (" + c.n + ")"];
    }), true);
    classChanged();
  }

  function classChanged() {
    source.klass($("method").value, $("class").value).then(function (data) {
      state.data = data; state.selected = []; state.k = data.eigengap_k;
      fill($("embedding"), Object.keys(data.embeddings).sort().reverse().map(function (e) {
        return [e, e];
      }), true);
      fill($("clustering"), Object.keys(data.clusterings).map(function (k) {
        return [k, "k-means " + k + (Number(k) === data.eigengap_k ? " (eigengap)" : "")];
      }));
      $("clustering").value = String(data.eigengap_k);
      resetView(); drawEigen(); clusteringChanged();
    }).catch(fail);
  }

  function clusteringChanged() {
    state.k = Number($("clustering").value);
    drawLegend(); drawPrototypes(); drawTable(); drawScatter(); showSelection();
  }

  function labels() { return state.data.clusterings[String(state.k)]; }

  function colourOf(i) {
    var by = $("colour").value, d = state.data;
    var v = by === "cluster" ? labels()[i] : by === "label" ? d.label[i] : d.prediction[i];
    return PALETTE[((v % PALETTE.length) + PALETTE.length) % PALETTE.length];
  }

  function points() { return state.data.embeddings[$("embedding").value]; }

  function toScreen(p, canvas) {
    var v = state.view, pad = 16, size = canvas.width - 2 * pad;
    return [pad + (p[0] * size) * v.s + v.tx, pad + ((1 - p[1]) * size) * v.s + v.ty];
  }

  function drawScatter() {
    var canvas = $("scatter"), ctx = canvas.getContext("2d"), pts = points();
    var chosen = {};
    state.selected.forEach(function (i) { chosen[i] = true; });
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    var r = Math.max(1.5, Math.min(4, 3 * Math.sqrt(state.view.s)));
    var drawn = 0;
    for (var i = 0; i < pts.length; i++) {
      var q = toScreen(pts[i], canvas);
      if (q[0] < -5 || q[1] < -5 || q[0] > canvas.width + 5 || q[1] > canvas.height + 5) {
        continue;
      }
      ctx.globalAlpha = state.selected.length && !chosen[i] ? 0.25 : 0.85;
      ctx.fillStyle = colourOf(i);
      ctx.beginPath(); ctx.arc(q[0], q[1], chosen[i] ? r + 1.5 : r, 0, 2 * Math.PI); ctx.fill();
      if (chosen[i]) { ctx.strokeStyle = "#000"; ctx.lineWidth = 1; ctx.stroke(); }
      drawn++;
    }
    ctx.globalAlpha = 1;
    canvas.dataset.drawn = String(drawn);
    var d = state.drag;
    if (d && d.tool !== "pan" && d.path.length > 1) {
      ctx.strokeStyle = "#000"; ctx.setLineDash([4, 3]); ctx.beginPath();
      if (d.tool === "box") {
        var a = d.path[0], b = d.path[d.path.length - 1];
        ctx.rect(a[0], a[1], b[0] - a[0], b[1] - a[1]);
      } else {
        d.path.forEach(function (p, j) { if (j) { ctx.lineTo(p[0], p[1]); } else { ctx.moveTo(p[0], p[1]); } });
        ctx.closePath();
      }
      ctx.stroke(); ctx.setLineDash([]);
    }
  }

  function resetView() { state.view = {s: 1, tx: 0, ty: 0}; }

  function canvasPoint(ev) {
    var c = $("scatter"), box = c.getBoundingClientRect();
    return [(ev.clientX - box.left) * c.width / box.width,
            (ev.clientY - box.top) * c.height / box.height];
  }

  function inside(poly, x, y) {
    var hit = false;
    for (var i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      var xi = poly[i][0], yi = poly[i][1], xj = poly[j][0], yj = poly[j][1];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) { hit = !hit; }
    }
    return hit;
  }

  function finishSelection(d) {
    var canvas = $("scatter"), pts = points(), poly = d.path;
    if (d.tool === "box") {
      var a = d.path[0], b = d.path[d.path.length - 1];
      poly = [[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]];
    }
    if (poly.length < 3) { return; }
    var picked = [];
    for (var i = 0; i < pts.length; i++) {
      var q = toScreen(pts[i], canvas);
      if (inside(poly, q[0], q[1])) { picked.push(i); }
    }
    select(picked, picked.length + " samples selected with the " + d.tool);
  }

  function select(rows, title) {
    state.selected = rows; state.title = title;
    drawScatter(); showSelection();
  }

  function selectCluster(c) {
    var lab = labels(), rows = [];
    for (var i = 0; i < lab.length; i++) { if (lab[i] === c) { rows.push(i); } }
    select(rows, "cluster " + c + " of k-means " + state.k + ": " + rows.length + " samples");
  }

  function drawLegend() {
    var lab = labels(), counts = [];
    lab.forEach(function (c) { counts[c] = (counts[c] || 0) + 1; });
    var legend = $("legend");
    legend.innerHTML = "";
    counts.forEach(function (n, c) {
      var s = document.createElement("span");
      s.dataset.cluster = String(c);
      s.innerHTML = "<i></i>";
      s.firstChild.style.background = PALETTE[c % PALETTE.length];
      s.appendChild(document.createTextNode("cluster " + c + " (" + n + ")"));
      s.addEventListener("click", function () { selectCluster(c); });
      legend.appendChild(s);
    });
  }

  function mean(values, lab, c) {
    var sum = 0, n = 0;
    for (var i = 0; i < lab.length; i++) {
      if (lab[i] === c && values[i] !== null) { sum += values[i]; n++; }
    }
    return n ? sum / n : null;
  }

  function drawTable() {
    var d = state.data, lab = labels(), others = Object.keys(d.rank);
    var head = "<tr><th>cluster</th><th>samples</th><th>|R| on border</th>" + others.map(function (o) {
      return "<th>rank corr. with " + escapeHtml(o) + "</th>";
    }).join("") + "</tr>";
    var rows = [];
    for (var c = 0; c < state.k; c++) {
      var n = lab.filter(function (v) { return v === c; }).length;
      var b = mean(d.border, lab, c);
      rows.push("<tr><td>" + c + "</td><td>" + n + "</td><td>" +
        (b === null ? "-" : (100 * b).toFixed(1) + "%") + "</td>" + others.map(function (o) {
          var r = mean(d.rank[o], lab, c);
          return "<td>" + (r === null ? "-" : r.toFixed(2)) + "</td>";
        }).join("") + "</tr>");
    }
    $("clusters").innerHTML = head + rows.join("");
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"]/g, function (ch) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[ch];
    });
  }

  function drawPrototypes() {
    var d = state.data, box = $("prototypes");
    box.innerHTML = "";
    for (var c = 0; c < state.k; c++) {
      var f = document.createElement("figure"), img = new Image();
      img.src = source.prototype(d.method, d["class"], state.k, c);
      img.alt = "mean heatmap of cluster " + c;
      img.dataset.kind = "prototype";
      f.appendChild(img);
      var cap = document.createElement("figcaption");
      cap.textContent = "cluster " + c;
      f.appendChild(cap);
      f.addEventListener("click", selectCluster.bind(null, c));
      box.appendChild(f);
    }
  }

  function drawEigen() {
    var canvas = $("eigen"), ctx = canvas.getContext("2d"), lam = state.data.eigenvalues;
    var w = canvas.width, h = canvas.height, pad = 28;
    var top = Math.max.apply(null, lam.concat([1e-6]));
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = "#999"; ctx.beginPath();
    ctx.moveTo(pad, 6); ctx.lineTo(pad, h - pad); ctx.lineTo(w - 6, h - pad); ctx.stroke();
    ctx.fillStyle = "#555"; ctx.font = "11px sans-serif";
    ctx.fillText(top.toFixed(2), 2, 12); ctx.fillText("0", 16, h - pad);
    ctx.fillText("eigenvalues, largest first as in CoRelAy (eigengap: k = " +
                 state.data.eigengap_k + ")", pad + 6, h - 8);
    lam.forEach(function (v, i) {
      var x = pad + 8 + i * (w - pad - 20) / Math.max(1, lam.length - 1);
      var y = h - pad - (v / top) * (h - pad - 12);
      ctx.fillStyle = i >= lam.length - state.data.eigengap_k ? "#d62728" : "#1f77b4";
      ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill();
    });
  }

  function cell(kind, m, i, title) {
    var img = new Image();
    img.src = source.image(kind, m, i);
    img.alt = title; img.title = title;
    img.dataset.kind = kind === "input" ? "input" : kind + ":" + m;
    return img;
  }

  function showSelection() {
    var d = state.data, grid = $("grid"), rows = state.selected.slice(0, MAX_SHOWN);
    var b = $("method-b").value;
    grid.innerHTML = "";
    $("selection-title").textContent = state.selected.length
      ? (state.title || "Selected samples") +
        (state.selected.length > MAX_SHOWN ? " (first " + MAX_SHOWN + " shown)" : "")
      : "Selected samples: none yet (click a cluster, or box / lasso in the scatter)";
    if (rows.length) {
      var heads = document.createElement("div");
      heads.className = "heads";
      heads.textContent = "input | " + d.method + " heatmap | overlay" +
        (b ? " | " + b + " heatmap | overlay" : "");
      grid.appendChild(heads);
    }
    rows.forEach(function (r) {
      var i = d.index[r], box = document.createElement("div"), cap = document.createElement("div");
      box.className = "sample";
      cap.className = "cap";
      cap.textContent = "sample " + i + " · label " + d.label[r] + " · prediction " +
        d.prediction[r] + " · cluster " + labels()[r];
      box.appendChild(cap);
      if (state.index.has_input) { box.appendChild(cell("input", null, i, "input " + i)); }
      box.appendChild(cell("heatmap", d.method, i, d.method));
      if (state.index.has_input) { box.appendChild(cell("overlay", d.method, i, d.method + " overlay")); }
      if (b) {
        box.appendChild(cell("heatmap", b, i, b));
        if (state.index.has_input) { box.appendChild(cell("overlay", b, i, b + " overlay")); }
      }
      grid.appendChild(box);
    });
  }

  function bindControls() {
    $("method").addEventListener("change", methodChanged);
    $("method-b").addEventListener("change", showSelection);
    $("class").addEventListener("change", classChanged);
    $("embedding").addEventListener("change", function () { resetView(); drawScatter(); });
    $("clustering").addEventListener("change", clusteringChanged);
    $("colour").addEventListener("change", drawScatter);
    $("reset").addEventListener("click", function () { resetView(); drawScatter(); });
    ["pan", "box", "lasso"].forEach(function (t) {
      $("tool-" + t).addEventListener("click", function () {
        state.tool = t;
        ["pan", "box", "lasso"].forEach(function (u) {
          $("tool-" + u).className = u === t ? "on" : "";
        });
        $("scatter").style.cursor = t === "pan" ? "grab" : "crosshair";
      });
    });
    var canvas = $("scatter");
    canvas.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var p = canvasPoint(ev), f = ev.deltaY < 0 ? 1.2 : 1 / 1.2, v = state.view;
      v.tx = p[0] - (p[0] - v.tx) * f; v.ty = p[1] - (p[1] - v.ty) * f; v.s *= f;
      drawScatter();
    }, {passive: false});
    canvas.addEventListener("pointerdown", function (ev) {
      try { canvas.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic events */ }
      state.drag = {tool: state.tool, path: [canvasPoint(ev)], view: {s: state.view.s,
                    tx: state.view.tx, ty: state.view.ty}};
    });
    canvas.addEventListener("pointermove", function (ev) {
      var d = state.drag;
      if (!d) { return; }
      var p = canvasPoint(ev);
      if (d.tool === "pan") {
        state.view.tx = d.view.tx + p[0] - d.path[0][0];
        state.view.ty = d.view.ty + p[1] - d.path[0][1];
      } else { d.path.push(p); }
      drawScatter();
    });
    canvas.addEventListener("pointerup", function () {
      var d = state.drag;
      state.drag = null;
      if (d && d.tool !== "pan") { finishSelection(d); } else { drawScatter(); }
    });
  }

  /* what selftest.js (the browser test) drives and reads */
  window.lumosExplorer = {state: state, labels: labels, el: $};

  start();
})();

/* lumos explorer, concept view: a layer's concepts (lumos concepts DIR --layer L), each with
   its reference samples by relevance and by activation, and a sample's most relevant concepts.
   Data from the local JSON API (lumos serve) or, in a static page, window.LUMOS_CONCEPTS. */
(function () {
  "use strict";
  var STATIC = window.LUMOS_CONCEPTS || null;
  var $ = function (id) { return document.getElementById(id); };
  var enc = encodeURIComponent;

  function getJSON(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  var source = STATIC ? {
    index: function () { return Promise.resolve(STATIC.index); },
    layer: function (m, l) { return Promise.resolve(STATIC.layers[m + "/" + l]); },
    sample: function (m, l, i) {
      var s = STATIC.samples[m + "/" + l + "/" + i];
      return s ? Promise.resolve(s) : Promise.reject(new Error("sample " + i + " not in page"));
    },
    ref: function (m, l, mode, c, k, kind) {
      return STATIC.images[[m, l, mode, c, k, kind].join("/")] || "";
    },
    sampleImage: function (m, l, i, t) { return STATIC.images[[m, l, "sample", i, t].join("/")] || ""; }
  } : {
    index: function () { return getJSON("api/concepts"); },
    layer: function (m, l) { return getJSON("api/concepts/" + enc(m) + "/" + enc(l)); },
    sample: function (m, l, i) {
      return getJSON("api/concepts/" + enc(m) + "/" + enc(l) + "/sample/" + i);
    },
    ref: function (m, l, mode, c, k, kind) {
      return "api/concepts/" + [m, l, mode, c, k].map(enc).join("/") + "/" + kind + ".png";
    },
    sampleImage: function (m, l, i, t) {
      return "api/concepts/" + enc(m) + "/" + enc(l) + "/sample/" + i + "/" + t + ".png";
    }
  };

  var state = {index: null, data: null, concept: null, sample: null};

  function hashValue(name) {
    var m = new RegExp("(?:^#|&)" + name + "=([^&]+)").exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function fill(select, items) {
    select.innerHTML = "";
    items.forEach(function (it) {
      var o = document.createElement("option");
      o.value = it[0]; o.textContent = it[1]; select.appendChild(o);
    });
  }

  function className(c) {
    var names = state.index.classes || [];
    return c < names.length ? names[c] : "class " + c;
  }

  function start() {
    $("method").addEventListener("change", methodChanged);
    $("layer").addEventListener("change", layerChanged);
    $("rank").addEventListener("change", drawTable);
    $("show-sample").addEventListener("click", function () {
      showSample(Number($("sample").value));
    });
    source.index().then(function (index) {
      state.index = index;
      $("where").textContent = index.directory;
      $("to-clusters").hidden = STATIC !== null || !index.clusters;
      var methods = Object.keys(index.methods);
      if (!methods.length) { throw new Error("this store has no concept analysis"); }
      fill($("method"), methods.map(function (m) { return [m, m]; }));
      if (hashValue("method") && index.methods[hashValue("method")]) {
        $("method").value = hashValue("method");
      }
      methodChanged();
    }).catch(fail);
  }

  function fail(err) {
    var p = document.createElement("p");
    p.className = "note"; p.textContent = String(err);
    $("concept-table").innerHTML = ""; $("left").appendChild(p);
  }

  function methodChanged() {
    var layers = state.index.methods[$("method").value];
    fill($("layer"), layers.map(function (l) {
      return [l.layer, l.layer + " (" + l.channels + ")"];
    }));
    if (hashValue("layer")) { $("layer").value = hashValue("layer"); }
    layerChanged();
  }

  function layerChanged() {
    source.layer($("method").value, $("layer").value).then(function (data) {
      state.data = data;
      fill($("rank"), [["", "mean relevance, all samples"]].concat(data.classes.map(
        function (_, c) { return [String(c), "mean relevance, target " + className(c)]; })));
      drawTable();
      var wanted = hashValue("concept");
      selectConcept(wanted !== null ? Number(wanted) : order()[0]);
      if (hashValue("sample") !== null) { showSample(Number(hashValue("sample"))); }
    }).catch(fail);
  }

  function ranking() {
    var r = $("rank").value;
    return r === "" ? state.data.mean : state.data.classes[Number(r)];
  }

  function order() {
    var v = ranking(), ids = v.map(function (_, c) { return c; });
    return ids.sort(function (a, b) { return (v[b] || 0) - (v[a] || 0); });
  }

  function drawTable() {
    var v = ranking(), top = Math.max.apply(null, v.map(function (x) { return Math.abs(x || 0); }).concat([1e-12]));
    var rows = ["<tr><th>concept</th><th>mean relevance</th><th></th><th>most relevant for</th></tr>"];
    order().forEach(function (c) {
      var width = Math.round(120 * Math.abs(v[c] || 0) / top);
      var best = state.data.classes.map(function (row, k) { return [row[c] || 0, k]; })
        .sort(function (a, b) { return b[0] - a[0]; }).slice(0, 2)
        .map(function (p) { return className(p[1]); }).join(", ");
      rows.push("<tr data-concept=\"" + c + "\"" + (c === state.concept ? " class=\"on\"" : "") +
        "><td>" + c + "</td><td>" + (v[c] === null ? "-" : v[c].toPrecision(3)) +
        "</td><td class=\"bar\"><i class=\"" + ((v[c] || 0) < 0 ? "neg" : "") + "\" style=\"width:" +
        width + "px\"></i></td><td>" + best + "</td></tr>");
    });
    $("concept-table").innerHTML = rows.join("");
    Array.prototype.forEach.call($("concept-table").querySelectorAll("tr[data-concept]"),
      function (tr) {
        tr.addEventListener("click", function () { selectConcept(Number(tr.dataset.concept)); });
      });
  }

  function figure(src, alt, kind, caption, onClick) {
    var f = document.createElement("figure"), img = new Image();
    img.src = src; img.alt = alt; img.title = alt; img.dataset.kind = kind;
    f.appendChild(img);
    if (caption) {
      var cap = document.createElement("figcaption");
      cap.textContent = caption; f.appendChild(cap);
    }
    if (onClick) { img.addEventListener("click", onClick); }
    return f;
  }

  function selectConcept(c) {
    var d = state.data, m = d.method, l = d.layer;
    state.concept = c;
    drawTable();
    $("concept-title").textContent = "Concept " + c + " of " + l + " (" + m + ")";
    var best = d.classes.map(function (row, k) { return [row[c] || 0, k]; })
      .sort(function (a, b) { return b[0] - a[0]; }).slice(0, 5);
    $("concept-classes").textContent = "mean relevance by target class: " + best.map(function (p) {
      return className(p[1]) + " " + p[0].toPrecision(3);
    }).join(" · ");
    var withHeat = d.heatmaps.indexOf(c) >= 0;
    ["relmax", "actmax"].forEach(function (mode) {
      var box = $(mode), refs = d.references[mode];
      box.innerHTML = "";
      refs.index[c].forEach(function (sample, k) {
        if (sample < 0) { return; }
        var pair = document.createElement("figure"), open = function () { showSample(sample); };
        pair.className = "pair";
        pair.dataset.sample = String(sample);
        pair.appendChild(figure(source.ref(m, l, mode, c, k, "input"), "sample " + sample,
                                mode + ":input", "", open));
        if (withHeat) {
          pair.appendChild(figure(source.ref(m, l, mode, c, k, "heatmap"), "conditional heatmap",
                                  mode + ":heatmap", "", open));
        }
        var cap = document.createElement("figcaption");
        cap.textContent = "#" + sample + " · " + (refs.score[c][k] === null ? "" :
                                                  refs.score[c][k].toPrecision(3));
        pair.appendChild(cap);
        box.appendChild(pair);
      });
    });
  }

  function showSample(i) {
    var d = state.data, m = d.method, l = d.layer;
    $("sample").value = String(i);
    return source.sample(m, l, i).then(function (s) {
      state.sample = s;
      $("sample-title").textContent = "Sample " + i + ": label " + className(s.label) +
        ", prediction " + className(s.prediction) + "; its most relevant concepts of " + l;
      var box = $("sample-concepts");
      box.innerHTML = "";
      s.top.forEach(function (c, t) {
        var row = document.createElement("div");
        row.className = "concept-row"; row.dataset.concept = String(c);
        var head = document.createElement("span");
        head.className = "share";
        head.textContent = "concept " + c + ": " + (100 * s.share[t]).toFixed(1) + "% of |R|";
        head.style.cursor = "pointer";
        head.addEventListener("click", function () { selectConcept(c); });
        row.appendChild(head);
        if (t < s.heatmaps) {
          row.appendChild(figure(source.sampleImage(m, l, i, t), "sample " + i + " given concept " + c,
                                 "sample:heatmap", "this sample"));
        }
        d.references.relmax.index[c].slice(0, 4).forEach(function (ref, k) {
          if (ref < 0) { return; }
          row.appendChild(figure(source.ref(m, l, "relmax", c, k, "input"), "reference " + ref,
                                 "sample:reference", "#" + ref, function () { showSample(ref); }));
        });
        box.appendChild(row);
      });
    }).catch(function (err) {
      $("sample-title").textContent = "Sample " + i + ": " + err.message;
    });
  }

  /* what concepts-check.js (the browser test) drives and reads */
  window.lumosConcepts = {state: state, el: $, selectConcept: selectConcept,
                          showSample: showSample, order: order};

  start();
})();

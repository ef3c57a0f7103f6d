/* Concept view self-test, run only with #selftest in the address (the browser tests): waits for
   the concept table, selects the concept the address names (or the first), waits for its
   reference images, opens the sample view of its first reference, waits for those images and
   writes what the page shows as JSON into the pre element #lumos-check. */
(function () {
  "use strict";
  if (!/(?:^#|&)selftest(?:&|$)/.test(location.hash)) { return; }
  var ex = window.lumosConcepts, $ = ex.el;

  function loaded(selector) {
    var imgs = Array.prototype.slice.call(document.querySelectorAll(selector));
    return Promise.all(imgs.map(function (img) {
      return img.complete ? Promise.resolve() : new Promise(function (ok) {
        img.onload = ok; img.onerror = ok;
      });
    })).then(function () { return imgs; });
  }

  function describe(imgs) {
    return imgs.map(function (img) {
      return {kind: img.dataset.kind, width: img.naturalWidth, src: img.src.slice(0, 22)};
    });
  }

  var tries = 0;
  (function wait() {
    if (!document.querySelector("#concept-table tr[data-concept]") || ex.state.concept === null) {
      if (tries++ < 400) { setTimeout(wait, 50); }
      return;
    }
    var concept = ex.state.concept;
    var shown = function (id) {
      return Array.prototype.map.call(document.querySelectorAll("#" + id + " figure.pair"),
                                      function (f) { return Number(f.dataset.sample); });
    };
    loaded("#relmax img, #actmax img").then(function (refImgs) {
      var relmax = shown("relmax"), actmax = shown("actmax");
      return ex.showSample(relmax[0]).then(function () {
        return loaded("#sample-concepts img");
      }).then(function (sampleImgs) {
        var out = document.createElement("pre");
        out.id = "lumos-check";
        out.textContent = JSON.stringify({
          concept: concept, title: $("concept-title").textContent,
          rows: document.querySelectorAll("#concept-table tr[data-concept]").length,
          first: ex.order()[0], relmax: relmax, actmax: actmax,
          classes: $("concept-classes").textContent,
          sample: ex.state.sample, sampleTitle: $("sample-title").textContent,
          sampleRows: document.querySelectorAll("#sample-concepts .concept-row").length,
          images: describe(refImgs.concat(sampleImgs)),
          requested: performance.getEntriesByType("resource").map(function (e) { return e.name; }),
          page: location.href
        });
        document.body.appendChild(out);
      });
    });
  })();
})();

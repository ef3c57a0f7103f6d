/* lumos explorer self-test, run only with #selftest in the address (the browser tests): drives
   the scatter with synthetic pointer and wheel events, selects the first cluster, waits for its
   images and writes what the page did as JSON into the pre element #lumos-check. */
(function () {
  "use strict";
  if (!/(?:^#|&)selftest(?:&|$)/.test(location.hash)) { return; }
  var ex = window.lumosExplorer, $ = ex.el;

  /* Drive the scatter with synthetic pointer and wheel events: box and lasso around the whole
     plot select every point, the wheel zooms, a drag pans. */
  function tryGestures() {
    var c = $("scatter"), box = c.getBoundingClientRect(), out = {};
    function at(x, y) { return {clientX: box.left + x * box.width, clientY: box.top + y * box.height,
                                pointerId: 1, bubbles: true}; }
    function drag(path) {
      c.dispatchEvent(new PointerEvent("pointerdown", at(path[0][0], path[0][1])));
      path.slice(1).forEach(function (p) { c.dispatchEvent(new PointerEvent("pointermove", at(p[0], p[1]))); });
      c.dispatchEvent(new PointerEvent("pointerup", at(path[path.length - 1][0], path[path.length - 1][1])));
    }
    $("tool-box").click();
    drag([[0.001, 0.001], [0.5, 0.5], [0.999, 0.999]]);
    out.box = ex.state.selected.length;
    $("tool-lasso").click();
    drag([[0.001, 0.001], [0.999, 0.001], [0.999, 0.999], [0.001, 0.999]]);
    out.lasso = ex.state.selected.length;
    /* the left half: the view centres the points, so the leftmost is in and the rightmost out,
       whatever the embedding (a fixed triangle missed every point of a UMAP layout) */
    drag([[0.001, 0.001], [0.5, 0.001], [0.5, 0.999], [0.001, 0.999]]);
    out.lassoPart = ex.state.selected.length;
    $("tool-pan").click();
    c.dispatchEvent(new WheelEvent("wheel", {clientX: box.left + box.width / 2,
      clientY: box.top + box.height / 2, deltaY: -100, bubbles: true, cancelable: true}));
    out.zoom = ex.state.view.s;
    var before = ex.state.view.tx;
    drag([[0.5, 0.5], [0.6, 0.6]]);
    out.panX = Math.round(ex.state.view.tx - before);
    $("reset").click();
    return out;
  }

  /* #selftest: select the first cluster, wait for its images, report what the page did. */
  function selfTest() {
    var tries = 0;
    (function wait() {
      var first = document.querySelector("#legend span");
      if (!first) { if (tries++ < 200) { setTimeout(wait, 50); } return; }
      var gestures = tryGestures();
      first.click();
      var imgs = Array.prototype.slice.call(document.querySelectorAll("#grid img, #prototypes img"));
      Promise.all(imgs.map(function (img) {
        return img.complete ? Promise.resolve() : new Promise(function (ok) {
          img.onload = ok; img.onerror = ok;
        });
      })).then(function () {
        var canvas = $("scatter"), px = canvas.getContext("2d").getImageData(
          0, 0, canvas.width, canvas.height).data, coloured = 0;
        for (var i = 0; i < px.length; i += 4) {
          if (px[i] < 240 || px[i + 1] < 240 || px[i + 2] < 240) { coloured++; }
        }
        var out = document.createElement("pre");
        out.id = "lumos-check";
        out.textContent = JSON.stringify({
          points: ex.state.data.n, drawn: Number(canvas.dataset.drawn), coloured: coloured,
          selected: ex.state.selected.length, cluster: Number(first.dataset.cluster),
          clusterSize: ex.labels().filter(function (v) { return v === 0; }).length,
          title: $("selection-title").textContent,
          images: imgs.map(function (img) {
            return {kind: img.dataset.kind, width: img.naturalWidth, src: img.src.slice(0, 22)};
          }),
          gestures: gestures,
          requested: performance.getEntriesByType("resource").map(function (e) { return e.name; }),
          page: location.href
        });
        document.body.appendChild(out);
      });
    })();
  }

  selfTest();
})();

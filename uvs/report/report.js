// The gallery: queries of one direction at a time, worst first, a page at a time.
// Everything comes from the JSON in #gallery-data; text goes in as text, never as HTML.
(function () {
  "use strict";
  var source = document.getElementById("gallery-data");
  if (!source) return;
  var data = JSON.parse(source.textContent);
  var root = document.getElementById("gallery");
  var list = root.querySelector(".queries");
  var state = {dir: 0, page: 0, size: 12, sort: "worst", filter: ""};
  var orders = {};

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function queryItem(d, q) { return d.query ? d.query[q] : q; }

  function badge(rank) {
    var r = rank + 1;
    var b = el("span", "badge " + (r === 1 ? "good" : r <= 10 ? "ok" : "bad"),
               "ground truth #" + r);
    b.title = "rank of the ground truth among all candidates (1 = first)";
    return b;
  }

  function imageTile(i, opts) {
    var item = data.images[i];
    var fig = el("figure", "tile" + (opts.gt ? " gt" : ""));
    if (item.thumb >= 0) {
      var img = el("img", "thumb");
      img.src = data.thumbs[item.thumb];
      img.alt = item.label;
      fig.appendChild(img);
    } else {
      fig.appendChild(el("div", "noimg", item.label));
    }
    var cap = el("figcaption");
    if (opts.pos) cap.appendChild(el("strong", null, "#" + opts.pos + " "));
    if (opts.gt) cap.appendChild(el("span", "tick", "✓ "));
    cap.appendChild(document.createTextNode(
        (item.thumb >= 0 && !opts.query ? item.label : "") +
        (opts.score !== undefined ? " · " + opts.score.toFixed(3) : "")));
    fig.appendChild(cap);
    return fig;
  }

  function captionRow(c, pos, score, gt) {
    var li = el("li", gt ? "gt" : "");
    li.appendChild(el("span", "pos", "#" + pos));
    var text = el("span", "ctext");
    if (gt) text.appendChild(el("span", "tick", "✓ "));
    text.appendChild(document.createTextNode(data.captions[c]));
    li.appendChild(text);
    li.appendChild(el("span", "score", score === null ? "" : score.toFixed(3)));
    return li;
  }

  function card(d, q) {
    var item = queryItem(d, q);
    var box = el("article", "query " + d.query_kind + "-query");
    box.dataset.query = q;
    var body = el("div", "qbody");
    var head = el("div", "qhead");
    if (d.query_kind === "image") {
      box.appendChild(imageTile(item, {query: true}));
      head.appendChild(el("span", "qtext", data.images[item].label));
      if (d.rank) head.appendChild(el("span", "muted", "image " + item));
    } else {
      head.appendChild(el("span", "qtext", data.captions[item]));
      if (d.rank) head.appendChild(el("span", "muted",
          "caption " + item + " of image " + Math.floor(item / 5)));
    }
    if (d.rank) head.appendChild(badge(d.rank[q]));
    body.appendChild(head);
    var top = d.top[q], scores = d.score[q];
    var gt = d.gt ? d.gt[q] : -1;
    var isGt = function (r) {
      return d.gt && (d.result_kind === "caption" ? Math.floor(r / 5) === Math.floor(gt / 5)
                                                  : r === gt);
    };
    var shown = top.some(isGt);
    if (d.result_kind === "caption") {
      var ol = el("ol", "hits");
      top.forEach(function (c, j) { ol.appendChild(captionRow(c, j + 1, scores[j], isGt(c))); });
      if (d.gt && !shown) {
        ol.appendChild(el("li", "gap", "⋯"));
        ol.appendChild(captionRow(gt, d.rank[q] + 1, null, true));
      }
      body.appendChild(ol);
    } else {
      var tiles = el("div", "tiles");
      top.forEach(function (i, j) {
        tiles.appendChild(imageTile(i, {pos: j + 1, score: scores[j], gt: isGt(i)}));
      });
      if (d.gt && !shown) {
        tiles.appendChild(el("div", "gap", "⋯"));
        tiles.appendChild(imageTile(gt, {pos: d.rank[q] + 1, gt: true}));
      }
      body.appendChild(tiles);
    }
    box.appendChild(body);
    return box;
  }

  function queryText(d, q) {
    var item = queryItem(d, q);
    return (d.query_kind === "image" ? data.images[item].label : data.captions[item])
        .toLowerCase();
  }

  function order(d) {
    var key = state.dir + ":" + state.sort;
    if (!orders[key]) {
      var idx = d.top.map(function (_, q) { return q; });
      if (d.rank && state.sort !== "data") {
        var s = state.sort === "worst" ? -1 : 1;
        idx.sort(function (a, b) { return s * (d.rank[a] - d.rank[b]) || a - b; });
      }
      orders[key] = idx;
    }
    var words = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return orders[key];
    return orders[key].filter(function (q) {
      var t = queryText(d, q);
      return words.every(function (w) { return t.indexOf(w) >= 0; });
    });
  }

  function render() {
    var d = data.directions[state.dir];
    var idx = order(d);
    var pages = Math.max(1, Math.ceil(idx.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    var from = state.page * state.size, to = Math.min(idx.length, from + state.size);
    list.textContent = "";
    idx.slice(from, to).forEach(function (q) { list.appendChild(card(d, q)); });
    if (!idx.length) list.appendChild(el("p", "empty", "No query matches."));
    root.querySelectorAll(".pager").forEach(function (p) {
      p.hidden = idx.length <= state.size;
      p.querySelector(".where").textContent = (idx.length ? (from + 1) + "–" + to : "0") +
          " of " + idx.length + " queries · page " + (state.page + 1) + " of " + pages;
      p.querySelector(".prev").disabled = state.page === 0;
      p.querySelector(".next").disabled = state.page >= pages - 1;
    });
    root.querySelectorAll(".tabs button").forEach(function (b, i) {
      b.setAttribute("aria-selected", i === state.dir ? "true" : "false");
    });
  }

  function setup() {
    var controls = root.querySelector(".controls");
    var many = data.directions.some(function (d) { return d.top.length > 1; });
    controls.hidden = !many;
    var tabs = root.querySelector(".tabs");
    data.directions.forEach(function (d, i) {
      var b = el("button", null, d.title);
      b.type = "button";
      b.setAttribute("role", "tab");
      b.addEventListener("click", function () { state.dir = i; state.page = 0; render(); });
      tabs.appendChild(b);
    });
    tabs.hidden = data.directions.length < 2;
    controls.querySelector(".sort").addEventListener("change", function (e) {
      state.sort = e.target.value; state.page = 0; render();
    });
    controls.querySelector(".size").addEventListener("change", function (e) {
      state.size = parseInt(e.target.value, 10); state.page = 0; render();
    });
    controls.querySelector(".filter").addEventListener("input", function (e) {
      state.filter = e.target.value; state.page = 0; render();
    });
    root.querySelectorAll(".pager").forEach(function (p) {
      p.querySelector(".prev").addEventListener("click", function () {
        state.page -= 1; render(); if (p.classList.contains("bottom")) root.scrollIntoView();
      });
      p.querySelector(".next").addEventListener("click", function () {
        state.page += 1; render(); if (p.classList.contains("bottom")) root.scrollIntoView();
      });
    });
    render();
  }

  setup();
})();

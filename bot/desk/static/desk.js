// The desk's only script: the overview refreshes itself every 30 s while open (new leads appear
// without a reload), and the demo's person switcher submits on change.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (live && live.dataset.live === "1") {
    var seconds = parseFloat(live.dataset.refresh || "30");
    setInterval(function () {
      if (document.hidden) { return; }
      fetch(window.location.href, {headers: {"X-Desk-Fragment": "1"}, credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { live.innerHTML = html; } })
        .catch(function () { /* try again next time */ });
    }, seconds * 1000);
  }
  var as = document.getElementById("as");
  if (as) { as.addEventListener("change", function () { as.form.submit(); }); }
})();

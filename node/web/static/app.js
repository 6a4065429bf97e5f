// Enhancements only: every page works without this file.
// On the import certificate form, show the anhydrous-base equivalent and the remaining
// estimate as the official types, by asking the node's JSON endpoint with the form's fields.
(function () {
  "use strict";
  var form = document.querySelector("form[data-preview]");
  if (!form) { return; }
  var out = document.getElementById("preview");
  var timer = null;
  function update() {
    var data = new URLSearchParams(new FormData(form));
    data.delete("csrf_token");
    data.delete("action");
    fetch(form.getAttribute("data-preview") + "?" + data.toString(), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (r) { return r.json(); }).then(function (body) {
      out.textContent = "";
      var p = document.createElement("p");
      p.textContent = body.message;
      out.appendChild(p);
      out.className = "notice " + (body.ok ? "ok" : (body.blocking ? "error" : "warn"));
      out.hidden = false;
    }).catch(function () { /* the server-side check on submit still applies */ });
  }
  form.addEventListener("input", function () {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(update, 300);
  });
  form.addEventListener("change", function () {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(update, 50);
  });
})();

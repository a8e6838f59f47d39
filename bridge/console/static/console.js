// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  var announce = document.getElementById("announce");
  function say(text) { if (announce) { announce.textContent = text; } }

  // Copy buttons next to values shown once.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function () { say("Copied to the clipboard."); button.firstChild.nodeValue = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { fallback(); });
      } else { fallback(); }
      function fallback() { field.select(); document.execCommand("copy"); done(); }
    });
  });

  // Live refresh of a source's events.
  var live = document.querySelector("[data-live]");
  var toggle = document.getElementById("live");
  if (live && toggle) {
    toggle.closest("label").hidden = false;
    window.setInterval(function () {
      if (!toggle.checked || document.hidden) { return; }
      fetch(live.getAttribute("data-live"), { credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.text() : null; })
        .then(function (html) { if (html !== null && html !== live.innerHTML) { live.innerHTML = html; } });
    }, 5000);
  }
})();

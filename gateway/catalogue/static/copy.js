// The catalogue's copy buttons: a progressive enhancement. Without this script the buttons
// stay hidden and the snippets are plain selectable text.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) { return; }
  var status = document.getElementById("copy-status");
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent).then(function () {
        if (status) { status.textContent = button.getAttribute("data-copied"); }
      });
    });
  });
});

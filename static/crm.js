// crm's own few lines of JavaScript. Everything works without them; they make it nicer.
(function () {
  "use strict";

  // Sign-up: preselect the browser's own time zone, unless the form came back with one chosen.
  document.addEventListener("DOMContentLoaded", function () {
    var select = document.querySelector("select[data-default-browser-zone='yes']");
    var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (select && zone && select.querySelector("option[value='" + zone + "'], option")) {
      for (var i = 0; i < select.options.length; i++) {
        if (select.options[i].text === zone) { select.selectedIndex = i; break; }
      }
    }
  });

  // htmx swaps nothing on an error answer: say what happened where messages appear.
  function tell(message) {
    var flash = document.getElementById("flash");
    if (!flash) { return; }
    var line = document.createElement("p");
    line.className = "flash error-flash";
    line.textContent = message;
    flash.replaceChildren(line);
  }
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status === 403) {
      tell("This page has expired. Reload it and try again.");
    } else if (status === 404) {
      tell("That no longer exists; it may have been deleted in another window.");
    } else {
      tell("crm could not do that (error " + status + "). Reload the page and try again.");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    tell("crm cannot be reached. Check your connection and try again.");
  });

  // When the SSE connection is reopened, messages sent meanwhile were missed (the extension's
  // own reconnect sends no Last-Event-ID): refresh every live section once.
  var opened = 0;
  document.addEventListener("htmx:sseOpen", function () {
    opened += 1;
    if (opened > 1) {
      document.querySelectorAll("[data-live]").forEach(function (el) {
        htmx.trigger(el, "crm:refresh");
      });
    }
  });
})();

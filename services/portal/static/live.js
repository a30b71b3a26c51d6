// The invoice page, live: the server sends the page's changing parts (rendered on the server) as
// server-sent events when the invoice changes; without JavaScript the page is complete as loaded.
(function () {
  "use strict";
  var page = document.getElementById("invoice");
  if (!page || !window.EventSource || !window.JSON) {
    return;
  }
  var status = document.getElementById("live-status");
  var source = new EventSource(page.getAttribute("data-live"));
  source.addEventListener("invoice", function (event) {
    var data = JSON.parse(event.data);
    ["summary", "history", "thread"].forEach(function (part) {
      var element = document.getElementById(part);
      if (element && typeof data[part] === "string") {
        element.innerHTML = data[part];
      }
    });
    page.setAttribute("data-version", String(data.version));
    if (status && data.said) {
      status.textContent = data.said;
    }
  });
})();

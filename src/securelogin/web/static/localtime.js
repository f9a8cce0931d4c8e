// Shows every <time datetime="..."> in the reader's own time zone (the text stays UTC
// without JavaScript). No inline script anywhere: the Content-Security-Policy forbids it.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("time[datetime]").forEach(function (element) {
    var moment = new Date(element.getAttribute("datetime"));
    if (!isNaN(moment.getTime())) {
      element.textContent = moment.toLocaleString(undefined, {
        dateStyle: "medium", timeStyle: "short", timeZoneName: "short"
      });
    }
  });
});

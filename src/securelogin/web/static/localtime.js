// Shows every <time datetime="..."> in the reader's own time zone (the text stays UTC
// without JavaScript). No inline script anywhere: the Content-Security-Policy forbids it.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("time[datetime]").forEach(function (element) {
    var moment = new Date(element.getAttribute("datetime"));
    if (!isNaN(moment.getTime())) {
      // Component options, not dateStyle/timeStyle: those cannot be combined with
      // timeZoneName (a TypeError that left every time in UTC).
      element.textContent = moment.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", timeZoneName: "short"
      });
    }
  });
});

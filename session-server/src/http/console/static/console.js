// The console's live event feed: asks the console for the events after the last one shown
// (a long poll: the answer comes when an event does, or after 20 s empty) and adds each new
// one at the top of the table. Text goes in with textContent only, never as markup.
(function () {
  "use strict";
  var table = document.getElementById("events");
  var status = document.getElementById("feed-status");
  if (!table || !status) {
    return;
  }
  var body = table.tBodies[0];
  var after = table.getAttribute("data-after") || "latest";
  var uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function add(event) {
    var row = document.createElement("tr");
    row.className = "event";
    var at = cell(row, "");
    var time = document.createElement("time");
    time.setAttribute("datetime", event.at);
    time.textContent = event.at.replace("T", " ").replace("Z", " UTC");
    at.appendChild(time);
    cell(row, event.type).className = "type";
    var user = cell(row, "");
    if (uuid.test(event.user_id)) {
      var link = document.createElement("a");
      link.href = "/console/users/" + event.user_id;
      link.textContent = event.user_id;
      user.appendChild(link);
    }
    var handles = event.handles.join(", ");
    if (event.all) {
      handles = handles ? "all (" + handles + ")" : "all";
    }
    cell(row, handles);
    var by = "";
    if (event.by) {
      by = "key " + event.by.admin_key + (event.by.client_ip ? " from " + event.by.client_ip : "");
    }
    cell(row, by).className = "by";
    body.insertBefore(row, body.firstChild);
  }

  function follow() {
    fetch("/console/events/poll?after=" + encodeURIComponent(after), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (response.status === 401) {
          status.textContent = "Your console sign-in has ended: reload the page to sign in again.";
          return null;
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (page) {
        if (page === null) {
          return;
        }
        if (page.reset) {
          status.textContent = "The feed was reset (events were trimmed or lost); following it from now.";
        } else {
          status.textContent = "Following the feed.";
        }
        page.events.forEach(add);
        after = page.last_id;
        follow();
      })
      .catch(function () {
        status.textContent = "The feed is unreachable; trying again.";
        setTimeout(follow, 2000);
      });
  }

  follow();
})();

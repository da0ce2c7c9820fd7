"""A platform's Flask application using the real-time service: log in, a page with the browser client, likes.

    REALTIME_URL=http://127.0.0.1:8080 REALTIME_NOTIFY_URL=http://127.0.0.1:8081 \
    REALTIME_AUTH_SECRET=... REALTIME_NOTIFY_SECRET=... python examples/flask_app.py

The platform owns users and posts (the service reads them from the same database's `users` and `posts`);
this example keeps a few in its config (`USERS`, `POSTS`). It needs Flask and realtime-notify, nothing of
the service. No CSRF protection or real passwords here: a real application has its own.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, jsonify, redirect, render_template_string, request, session, url_for
from realtime_notify import NotifyClient, NotifyError, Unavailable, mint_token

TOKEN_TTL = 3600  # seconds; the page's client needs a fresh token after this (a reload mints one)

LOGIN_PAGE = """<!doctype html>
<title>Log in</title>
<form method="post">
  {% for user_id, name in users.items() %}
  <button name="user_id" value="{{ user_id }}">{{ name }}</button>
  {% endfor %}
</form>
"""

HOME_PAGE = """<!doctype html>
<title>{{ name }}</title>
<script src="{{ realtime_url }}/static/realtime.js"></script>
<p>Logged in as {{ name }}. Notifications: <span id="unread">0</span></p>
<ul id="notifications"></ul>
{% for post_id, owner_id in posts.items() %}
<p>Post {{ post_id }} by {{ users[owner_id] }} <button class="like" data-post="{{ post_id }}">Like</button></p>
{% endfor %}
<script>
  const client = new RealtimeClient({url: {{ socket_url|tojson }}, token: {{ token|tojson }}, userId: {{ user_id }}});
  let unread = 0;
  client.on("connected", (frame) => { unread = frame.unreadNotifications; render(); });
  client.on("notification", (frame) => {
    unread += 1;
    const item = document.createElement("li");
    item.textContent = frame.text;
    document.getElementById("notifications").prepend(item);
    render();
  });
  function render() { document.getElementById("unread").textContent = unread; }
  for (const button of document.querySelectorAll("button.like")) {
    button.onclick = () => fetch(`/posts/${button.dataset.post}/like`, {method: "POST"});
  }
  client.connect();
</script>
"""


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app; `config` overrides the settings read from the environment (tests pass theirs)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("FLASK_SECRET_KEY", "change-me"),
        REALTIME_URL=os.environ.get("REALTIME_URL", "http://127.0.0.1:8080"),
        REALTIME_NOTIFY_URL=os.environ.get("REALTIME_NOTIFY_URL", "http://127.0.0.1:8081"),
        REALTIME_AUTH_SECRET=os.environ.get("REALTIME_AUTH_SECRET", ""),
        REALTIME_NOTIFY_SECRET=os.environ.get("REALTIME_NOTIFY_SECRET") or None,
        USERS={1: "alice", 2: "bob"},
        POSTS={1: 1},  # post id: owner id
    )
    app.config.update(config or {})
    # one client for the app: it holds no connection, only settings
    notify = NotifyClient(app.config["REALTIME_NOTIFY_URL"], signing_secret=app.config["REALTIME_NOTIFY_SECRET"])

    def current_user() -> int:
        user_id = session.get("user_id")
        if user_id not in app.config["USERS"]:
            abort(401)
        return user_id

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "POST":
            user_id = request.form.get("user_id", type=int)
            if user_id not in app.config["USERS"]:
                abort(400)
            session["user_id"] = user_id
            return redirect(url_for("home"))
        return render_template_string(LOGIN_PAGE, users=app.config["USERS"])

    @app.get("/")
    def home():
        user_id = session.get("user_id")
        if user_id not in app.config["USERS"]:
            return redirect(url_for("login"))
        realtime_url = app.config["REALTIME_URL"].rstrip("/")
        return render_template_string(
            HOME_PAGE,
            name=app.config["USERS"][user_id],
            user_id=user_id,
            users=app.config["USERS"],
            posts=app.config["POSTS"],
            realtime_url=realtime_url,
            socket_url="ws" + realtime_url.removeprefix("http") + "/",
            token=mint_token(app.config["REALTIME_AUTH_SECRET"], user_id, TOKEN_TTL),
        )

    @app.post("/posts/<int:post_id>/like")
    def like(post_id: int):
        user_id = current_user()
        if post_id not in app.config["POSTS"]:
            abort(404)
        # the like itself is stored by the platform first; then the service tells the owner
        try:
            result = notify.like(post_id, user_id, post_owner_id=app.config["POSTS"][post_id])
        except Unavailable as error:
            return jsonify(liked=True, notified=False, error=error.message), 503
        except NotifyError as error:
            app.logger.error("notify API refused a like: %s", error)
            return jsonify(liked=True, notified=False, error=error.message), 502
        return jsonify(liked=True, notified=True, recipients=result.recipients, online=result.online)

    return app


if __name__ == "__main__":
    create_app().run(port=5000)

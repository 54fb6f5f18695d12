"""The web foundation shared by Spean's management APIs and consoles.

App factory and problem details (`app`, `problems`), authentication and
roles (`auth`, `api_keys`, `roles`), and serving inside a server process
(`serve`). It knows nothing of a security server or the authority: they
build their APIs on it.
"""

"""Starting and stopping the management listener of one security server process.

Built from the ``management`` section: the API key store, the roles of
client certificates, the OIDC verifier, the admin log, the traffic index, the FastAPI
application with its console, and its uvicorn listener (gateway/web/serve.py). `stop` closes
the listener first, then the admin log, so no action is cut off mid-record.
"""

from __future__ import annotations

from spean.gateway.management.admin_log import AdminLog, open_admin_log
from spean.gateway.management.api import security_server_app
from spean.gateway.management.audit_view import AuditView
from spean.gateway.management.console import NAVIGATION, home_of, install_console
from spean.gateway.management.console import TEMPLATES as CONSOLE_TEMPLATES
from spean.gateway.management.service import ManagementService, ServerView
from spean.gateway.management.traffic_index import TrafficIndex
from spean.gateway.web.console import Console
from spean.gateway.web.credentials import listener_setup
from spean.gateway.web.serve import WebListener


class ManagementListener:
    def __init__(self, server: ServerView) -> None:
        config = server.config
        section = config.management
        assert section is not None
        setup = listener_setup(section, config.resolve)
        authenticator, tls = setup.authenticator, setup.tls
        self.admin_log = AdminLog(open_admin_log(config))
        try:
            self.index = TrafficIndex(config.resolve(section.index), server.audit, config.server_id)
        except BaseException:
            self.admin_log.close()
            raise
        try:
            audit = AuditView(server.audit, self.index, config.server_id)
            app = security_server_app(
                ManagementService(server, self.admin_log, audit),
                authenticator,
                section.max_body_bytes,
            )
            install_console(
                app,
                Console(
                    authenticator,
                    templates=[CONSOLE_TEMPLATES],
                    navigation=NAVIGATION,
                    title_key="app.title",
                    secure_cookies=tls is not None,
                    oidc_login=setup.browser_login,
                    home=home_of,
                ),
            )
            self._listener = WebListener(section.listen, tls, name="management")
            self._app = app
        except BaseException:
            self.index.close()
            self.admin_log.close()
            raise
        self.port = self._listener.port
        self.scheme = self._listener.scheme

    def start(self) -> None:
        self._listener.start(self._app)

    def stop(self) -> None:
        self._listener.stop()
        self.index.close()
        self.admin_log.close()

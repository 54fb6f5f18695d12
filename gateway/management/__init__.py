"""The security server's management API: routes, the service behind them, the admin log."""

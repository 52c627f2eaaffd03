"""The photonranch user status relay: Lambda handlers and the logic behind them.

Entry points (keep these names; the stack and the local relay wire them):
``userstatus.http_api.handler``, ``userstatus.websocket_api.handler``,
``userstatus.broadcast.handler``. This package never imports aws_cdk.
"""

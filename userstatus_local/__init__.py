"""The local relay: the whole user status system on one machine, through the real handlers.

``python -m userstatus_local`` serves the HTTP API, the WebSocket API with its management API
(``/@connections/{id}``) and a viewer page, keeps its data in an embedded DynamoDB (moto in
server mode) and feeds the messages table's stream to the broadcaster, invoking the same
``userstatus`` Lambda handlers the CDK stack deploys with API Gateway- and Lambda-shaped events.
"""

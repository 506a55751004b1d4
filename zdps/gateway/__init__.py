"""The WebSocket gateway: Phoenix Channels V2 clients on zdps topics (docs/GATEWAY.md)."""

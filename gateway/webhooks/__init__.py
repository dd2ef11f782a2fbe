"""Webhooks: drops POSTed to URLs that keys register, signed, retried, persisted.

- `signing`: secrets and the `X-Gateway-Signature` header (pure; receivers can copy it).
- `model`: URL/field validation, the drop-stream filters, the bodies posted (pure).
- `queries`: the SQL (tables `webhooks`, `webhook_deliveries`).
- `worker`: the delivery task started by `app.serve` (durable queue, retries, auto-disable).
"""

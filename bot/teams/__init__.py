"""Microsoft Teams for slabot, on the Microsoft 365 Agents SDK (the only package that imports it).

Modules: `app` (POST /api/messages and the turn logic), `auth` (inbound JWT, outbound tokens,
serviceUrl hosts), `transport` (the outbox's Teams side), `render` (neutral cards -> Adaptive
Cards), `store` (conversation references and users seen in Teams).
"""

"""Paid modules: markup arithmetic, payment providers (Paddle, sandbox), Paddle webhook signatures
and events, the purchase flow, sandbox checkouts and the agency's subscriptions with their prices.

Submodules are imported by name; this package file imports nothing, so a route pays at cold start
only for what it uses (the Paddle client and Powertools idempotency are imported lazily).
"""

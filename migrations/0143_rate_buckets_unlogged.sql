-- Token buckets need no durability: after a crash every bucket starts full again, which is harmless.
-- Unlogged, a bucket update writes no WAL, so the take's own commit does not wait for a WAL flush
-- (with `SET LOCAL synchronous_commit = off` in the same message, core/ratelimit.py).
ALTER TABLE private.rate_buckets SET UNLOGGED;

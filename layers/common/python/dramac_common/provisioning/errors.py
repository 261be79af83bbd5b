"""Provisioning failures, split by what a queue worker should do with them."""

from __future__ import annotations


class ProvisioningError(Exception):
    """Base class. ``permanent`` errors fail the installations at once; the others are retried."""

    permanent = False


class PermanentProvisioningError(ProvisioningError):
    """Retrying cannot help: the manifest or the module's state must change first."""

    permanent = True


class ManifestError(PermanentProvisioningError, ValueError):
    """An invalid manifest. ``problems`` name the table, the column and what is wrong."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems) or ["invalid manifest"]
        shown = self.problems[:5]
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__("Invalid module manifest: " + "; ".join(shown) + more)


class ProvisioningRefused(PermanentProvisioningError):
    """A change the provisioner will not make: short-id collisions, destructive upgrades, downgrades."""


class TransientProvisioningError(ProvisioningError):
    """The database was unavailable, a lock timed out, a connection was lost: try again."""

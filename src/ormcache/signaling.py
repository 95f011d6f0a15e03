"""Cross-process cache invalidation (filled in by the signaling work)."""


class RegistrySignaling:
    """Mixin of Registry: check_signaling / signal_changes / reset_changes / cursor_scope."""

"""ormcache: Odoo-compatible method-result caches built on fastlru."""

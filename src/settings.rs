//! Command line and environment (`COMPOSE_*`) resolved into typed settings.

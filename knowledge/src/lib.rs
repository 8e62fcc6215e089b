//! Obrol knowledge service (ingestion, indexes, retrieval) — grows in the knowledge issue.

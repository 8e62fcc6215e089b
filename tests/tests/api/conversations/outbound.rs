//! Outbound messages.

//! Transports: how messages reach the [`Server`](crate::protocol::Server).

pub mod stdio;

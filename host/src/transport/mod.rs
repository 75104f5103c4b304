//! The wire: MCP over stdio and over Streamable HTTP.

pub mod http;
pub mod stdio;

//! Worker-to-worker links: the dialing side ([`client`]), the receiving side
//! ([`server`]) and its delivery thread ([`inbound`]).

pub mod client;
pub mod inbound;
pub mod server;

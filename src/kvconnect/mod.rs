//! A KV Connect server (feature `server`): Deno KV's remote protocol over HTTP, so that
//! `Deno.openKv("http://host:port")` and the `@deno/kv` npm client use a valkeyrie
//! database. The `valkeyrie serve` command runs [`Server`].
//!
//! Values keep the encoding they were written in. Deno's V8-serialized values are stored
//! as [`Encoding::V8`](crate::Encoding::V8) and served back unchanged. Values this crate
//! writes are served as: `KvU64` counters as `LE64` (Deno's `Deno.KvU64`), raw bytes
//! (`set_bytes`) as `BYTES` (a `Uint8Array`), and values of the crate's codecs
//! (MessagePack, JSON, CBOR, BSON, custom) as `BYTES` of their stored payload, which a
//! client decodes with that format's library.
//!
//! Layout: `server.rs` is the HTTP layer (routing, token, body limits, watch streams),
//! `datapath.rs` turns protocol messages into reads and commits, `pb.rs` holds the
//! protobuf messages (hand-written prost derives: no `protoc` at build time).

mod datapath;
mod pb;
mod server;
mod time;
mod token;

pub use server::{MAX_REQUEST_BODY_BYTES, Server};

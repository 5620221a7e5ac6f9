//! The KV Connect data path messages (`com.deno.kv.datapath`, denokv's
//! `proto/schema/datapath.proto`), written by hand with prost's derives so that no
//! `protoc` runs at build time. Field numbers and enum values are the schema's.

#![allow(
    missing_docs,
    clippy::derive_partial_eq_without_eq,
    clippy::enum_variant_names
)]

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotRead {
    #[prost(message, repeated, tag = "1")]
    pub(crate) ranges: Vec<ReadRange>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotReadOutput {
    #[prost(message, repeated, tag = "1")]
    pub(crate) ranges: Vec<ReadRangeOutput>,
    #[prost(bool, tag = "2")]
    pub(crate) read_disabled: bool,
    #[prost(bool, tag = "4")]
    pub(crate) read_is_strongly_consistent: bool,
    #[prost(enumeration = "SnapshotReadStatus", tag = "8")]
    pub(crate) status: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum SnapshotReadStatus {
    SrUnspecified = 0,
    SrSuccess = 1,
    SrReadDisabled = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ReadRange {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) start: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) end: Vec<u8>,
    #[prost(int32, tag = "3")]
    pub(crate) limit: i32,
    #[prost(bool, tag = "4")]
    pub(crate) reverse: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ReadRangeOutput {
    #[prost(message, repeated, tag = "1")]
    pub(crate) values: Vec<KvEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AtomicWrite {
    #[prost(message, repeated, tag = "1")]
    pub(crate) checks: Vec<Check>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) mutations: Vec<Mutation>,
    #[prost(message, repeated, tag = "3")]
    pub(crate) enqueues: Vec<Enqueue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AtomicWriteOutput {
    #[prost(enumeration = "AtomicWriteStatus", tag = "1")]
    pub(crate) status: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) versionstamp: Vec<u8>,
    #[prost(uint32, repeated, tag = "4")]
    pub(crate) failed_checks: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Check {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) versionstamp: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Mutation {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub(crate) value: Option<KvValue>,
    #[prost(enumeration = "MutationType", tag = "3")]
    pub(crate) mutation_type: i32,
    #[prost(int64, tag = "4")]
    pub(crate) expire_at_ms: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub(crate) sum_min: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    pub(crate) sum_max: Vec<u8>,
    #[prost(bool, tag = "7")]
    pub(crate) sum_clamp: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KvValue {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) data: Vec<u8>,
    #[prost(enumeration = "ValueEncoding", tag = "2")]
    pub(crate) encoding: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KvEntry {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) value: Vec<u8>,
    #[prost(enumeration = "ValueEncoding", tag = "3")]
    pub(crate) encoding: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) versionstamp: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum MutationType {
    MUnspecified = 0,
    MSet = 1,
    MDelete = 2,
    MSum = 3,
    MMax = 4,
    MMin = 5,
    MSetSuffixVersionstampedKey = 9,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum ValueEncoding {
    VeUnspecified = 0,
    VeV8 = 1,
    VeLe64 = 2,
    VeBytes = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum AtomicWriteStatus {
    AwUnspecified = 0,
    AwSuccess = 1,
    AwCheckFailure = 2,
    AwWriteDisabled = 5,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Enqueue {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) payload: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub(crate) deadline_ms: i64,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub(crate) keys_if_undelivered: Vec<Vec<u8>>,
    #[prost(uint32, repeated, tag = "4")]
    pub(crate) backoff_schedule: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Watch {
    #[prost(message, repeated, tag = "1")]
    pub(crate) keys: Vec<WatchKey>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchOutput {
    #[prost(enumeration = "SnapshotReadStatus", tag = "1")]
    pub(crate) status: i32,
    #[prost(message, repeated, tag = "2")]
    pub(crate) keys: Vec<WatchKeyOutput>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchKey {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WatchKeyOutput {
    #[prost(bool, tag = "1")]
    pub(crate) changed: bool,
    #[prost(message, optional, tag = "2")]
    pub(crate) entry_if_changed: Option<KvEntry>,
}
